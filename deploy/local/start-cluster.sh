#!/usr/bin/env bash
# Start a Dask scheduler and N workers on this machine, with the commands the containers use.
#   deploy/local/start-cluster.sh DIR [N_WORKERS] [MEMORY_LIMIT]
# Writes DIR/scheduler.json (pass it as --scheduler-file), the logs, and one .pid file per
# process; deploy/local/stop-cluster.sh DIR stops them by process id.
set -euo pipefail
dir=${1:?usage: start-cluster.sh DIR [N_WORKERS] [MEMORY_LIMIT]}
n_workers=${2:-2}
memory_limit=${3:-auto}
mkdir -p "$dir"
rm -f "$dir/scheduler.json"
dask scheduler --host 127.0.0.1 --port 0 --dashboard-address :0 \
    --scheduler-file "$dir/scheduler.json" >"$dir/scheduler.log" 2>&1 &
echo $! >"$dir/scheduler.pid"
for _ in $(seq 300); do
    [ -s "$dir/scheduler.json" ] && break
    sleep 0.1
done
[ -s "$dir/scheduler.json" ] || { echo "the scheduler did not start: see $dir/scheduler.log" >&2; exit 1; }
for i in $(seq 1 "$n_workers"); do
    dask worker --scheduler-file "$dir/scheduler.json" --nthreads 1 --nworkers 1 \
        --memory-limit "$memory_limit" --name "worker-$i" --dashboard-address :0 \
        >"$dir/worker-$i.log" 2>&1 &
    echo $! >"$dir/worker-$i.pid"
done
echo "scheduler file: $dir/scheduler.json"
