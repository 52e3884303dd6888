"""Questions the tests ask the scheduler (never an engine's private attributes)."""

from __future__ import annotations

import time

from distributed import get_task_stream

from dask_biglearn.algebra import estep_coefficients
from dask_biglearn.kernels.passes import PassSpec


def scheduler_keys(client):
    """Every key the scheduler knows of now."""
    return set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks)))


def actor_workers(client):
    """The worker holding each actor the scheduler knows of."""
    def actors(dask_scheduler):
        return sorted(ws.address for ts in dask_scheduler.tasks.values() if ts.actor
                      for ws in ts.who_has)

    return client.run_on_scheduler(actors)


def joint_spec(engine, params):
    w, m, c = params
    shift = engine.summaries.shift
    return PassSpec(estep_coefficients(w, m, c, shift), shift)


def pass_tasks(client, run):
    """Run ``run()`` and return ``(its result, [(key, worker) of each task it ran])``."""
    with get_task_stream(client) as stream:
        result = run()
    return result, [(rec["key"], rec["worker"]) for rec in stream.data]


def rows_by_worker(client, engine, params):
    """How many rows each worker's tasks covered in one pass through the scheduler.

    The engine must reduce nothing on the workers (``split_every`` above its number of
    tasks), so the partial statistics the client receives are those of the chunk tasks, and
    their ``n_rows`` say how the rows are spread.
    """
    graph, keys = engine.stats_graph(joint_spec(engine, params))
    parts, tasks = pass_tasks(client, lambda: client.get(graph, keys))
    worker_of = {str(key): worker for key, worker in tasks}
    rows = {}
    for key, part in zip(keys, parts, strict=True):
        worker = worker_of[str(key)]
        rows[worker] = rows.get(worker, 0) + part[0].n_rows  # one spec: a list of one
    assert sum(rows.values()) == engine.n_samples
    return rows


def n_pass_tasks(tasks):
    """Tasks of passes (chunk groups and combines), leaving out anything else."""
    return sum("biglearn-pass" in str(key) for key, _ in tasks)



def eventually(probe, expected, timeout=15.0):
    """``probe()`` once it equals ``expected``, or its last value after ``timeout`` seconds
    (the scheduler forgets released keys asynchronously)."""
    deadline = time.monotonic() + timeout
    while (value := probe()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return value
