#!/usr/bin/env bash
# Stop what deploy/local/start-cluster.sh DIR started, by process id (workers first).
set -uo pipefail
dir=${1:?usage: stop-cluster.sh DIR}
for pidfile in "$dir"/worker-*.pid "$dir"/scheduler.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
done
