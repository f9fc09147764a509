"""Where shards run: in this process, in a local process pool, or as Ray tasks.

Every engine runs the same function, :func:`render_shard` by default,
on the same :class:`~hcgym.synthesis.dataset.shards.ShardJob` objects and hands each
result to ``on_result`` in this process as soon as it arrives (in any order: the output
never depends on it). Workers never write into the output folder, so a Ray cluster
needs no shared file system for the output (it does need the world file and the
background photos at the same paths on every node).

Other work spread the same way (the sensor bench's scenario sweeps,
:mod:`hcgym.synthesis.bench_sweep`) passes its own job function as ``fn``: a module-level
function of one picklable job that returns a picklable result.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from hcgym.errors import DependencyNotInstalled
from hcgym.synthesis.dataset.shards import ShardJob, ShardResult

OnResult = Callable[[Any], None]
#: A job function: one job in, one result out (module level, so that worker processes can import it).
JobFn = Callable[[Any], Any]


def render_shard(job: ShardJob) -> ShardResult:
    """Render one shard in the current process (the function every engine runs)."""
    mode = job.config.mode
    if mode == "scene":
        from hcgym.synthesis.dataset.scene import render_scene_shard

        return render_scene_shard(job)
    if mode == "faces":
        from hcgym.synthesis.dataset.faces import render_faces_shard

        return render_faces_shard(job)
    if mode == "clips":
        from hcgym.synthesis.dataset.clips import render_clips_shard

        return render_clips_shard(job)
    from hcgym.synthesis.dataset.multiview import render_multiview_shard

    return render_multiview_shard(job)


def run_inline(jobs: Iterable[Any], on_result: OnResult, fn: JobFn = render_shard) -> None:
    """Run the jobs one after the other in this process."""
    for job in jobs:
        on_result(fn(job))


def _init_worker() -> None:
    # Avatar builds run torch on tiny tensors: one thread per worker process.
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"


def run_pool(jobs: list[Any], workers: int, on_result: OnResult, recycle: int | None = None,
             fn: JobFn = render_shard) -> None:
    """Run the jobs in ``workers`` spawned processes (each replaced after ``recycle`` jobs)."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, initializer=_init_worker, maxtasksperchild=recycle) as pool:
        for result in pool.imap_unordered(fn, jobs):
            on_result(result)


def run_ray(jobs: list[Any], workers: int, on_result: OnResult, address: str | None = None,
            recycle: int | None = None, fn: JobFn = render_shard) -> None:
    """Run the jobs as Ray tasks (one CPU each).

    With ``address`` this connects to an existing cluster (``ray.init(address=...)``); otherwise it
    starts a local Ray with ``workers`` CPUs and no dashboard, and shuts it down at the end.
    """
    try:
        import ray
    except ImportError:
        raise DependencyNotInstalled("--engine ray needs Ray: pip install 'ray>=2.9'") from None
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1, max_calls=recycle or 0)(fn)
        pending = [task.remote(job) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                on_result(ray.get(ref))
    finally:
        if started:
            ray.shutdown()


def run(jobs: list[Any], on_result: OnResult, engine: str = "local", workers: int = 1,
        address: str | None = None, recycle: int | None = None, fn: JobFn = render_shard) -> None:
    """Dispatch ``fn`` over the jobs to :func:`run_ray`, :func:`run_pool` or :func:`run_inline`.

    One worker runs the jobs in this process, unless they must be spread over recycled processes
    (``recycle`` jobs each) to bound PyBullet's texture memory.
    """
    if not jobs:
        return
    if engine == "ray":
        run_ray(jobs, workers, on_result, address, recycle, fn)
    elif (workers > 1 and len(jobs) > 1) or (recycle is not None and len(jobs) > recycle):
        run_pool(jobs, max(1, min(workers, len(jobs))), on_result, recycle, fn)
    else:
        run_inline(jobs, on_result, fn)
