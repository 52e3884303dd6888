"""Fit a Zarr store on a SLURM cluster through dask-jobqueue.

    sbatch deploy/slurm/run_fit.sbatch        # or: python deploy/slurm/run_fit.py

This driver asks SLURM for worker jobs (one single-threaded worker per core), waits for them,
and runs ``dask-biglearn fit`` against their scheduler. Adapt the queue, account, sizes and
paths below.
"""

import subprocess
import sys

STORE = "/shared/data/mixture.zarr"
MODEL = "/shared/models/mixture.dbl"
N_JOBS = 4
#: The fit, as it runs (the scheduler's address is appended).
FIT_COMMAND = ["dask-biglearn", "fit", STORE, "--n-components", "25", "--sample-size", "auto",
               "--seed", "0", "--model", MODEL, "--json"]


def main():
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(queue="compute", account="my-account", cores=8, processes=8,
                           memory="32GB", walltime="02:00:00",
                           job_script_prologue=["export OMP_NUM_THREADS=1"])
    cluster.scale(jobs=N_JOBS)
    try:
        from distributed import Client

        with Client(cluster) as client:
            client.wait_for_workers(8 * N_JOBS, timeout=1800)
        return subprocess.call([*FIT_COMMAND, "--scheduler", cluster.scheduler_address])
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
