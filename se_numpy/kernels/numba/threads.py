"""The Numba backend's threads: OpenMP's waiting policy, BLAS threads, the convolution workers.

Imported first by the package, because of the first point.

* ``OMP_WAIT_POLICY=passive``. Numba's OpenMP thread pool spins between
  parallel regions by default. On a small or shared machine (2 cores, other
  processes running) a spinning worker steals the core the next call needs,
  and a 30 µs launch became 10-20 ms in our measurements (docs/kernels.md).
  Sleeping workers cost ~30 µs more per launch on an idle machine and never
  that. OpenMP reads the variable once, when it starts, so it is set here,
  before any parallel loop has run; a value the user chose is kept. This is a
  process-wide side effect of importing the backend (README, "Backends").
* **BLAS held to one thread during a convolution.** A convolution is split by
  samples over T worker threads (T = Numba's thread count), each making
  single-threaded BLAS calls. The obvious alternative, one big matrix product
  run by OpenBLAS's own pool, spins too: on a busy 2-core machine one 50 ms
  backward pass took 2.8 s (docs/kernels.md, "Convolution"). Workers that
  never wait for each other do not have that problem. ``threadpoolctl`` (the
  library scikit-learn uses) finds the BLAS NumPy loaded and sets its
  threads; where it finds none it can control, the convolution runs on one
  worker and leaves the BLAS its own threads.
* **Workers take the next chunk of work when they are free** (``run_chunks``)
  instead of a fixed share: on a loaded machine one worker may be
  descheduled for milliseconds, and with fixed shares the other then waits
  for it at the end; with a shared queue it does that worker's chunks too.
  Results are kept per chunk and returned in chunk order, so sums over them
  do not depend on which worker ran what.
* The worker pool is created on first use and shut down when Python exits.
"""
import atexit
import concurrent.futures
import itertools
import os
import threading

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numba  # noqa: E402  (after the environment default above)
from threadpoolctl import ThreadpoolController  # noqa: E402

_blas = {"controller": None}
_workers = {"pool": None, "size": 0}


def blas_controller():
    """The threadpoolctl controller of the BLAS libraries loaded in this process, or None."""
    if _blas["controller"] is None:
        controller = ThreadpoolController().select(user_api="blas")
        _blas["controller"] = controller if controller.lib_controllers else False
    return _blas["controller"] or None


def worker_count(jobs):
    """Workers for ``jobs`` independent jobs: Numba's thread count, or 1 without BLAS control."""
    return min(numba.get_num_threads(), jobs) if blas_controller() is not None else 1


def run_on_workers(job, jobs, hold_blas=False):
    """Run ``job(worker, count)`` on ``count`` workers (worker w takes jobs w, w + count, ...),
    with BLAS held to one thread meanwhile. Returns the results in worker order.

    With one worker the BLAS keeps its own threads, unless ``hold_blas``: for
    small products (a batch-1 CIFAR convolution) OpenBLAS's spinning pool
    costs far more than its second thread gains (docs/kernels.md)."""
    count = worker_count(jobs)
    if count == 1:
        if hold_blas and blas_controller() is not None:
            with blas_controller().limit(limits=1, user_api="blas"):
                return [job(0, 1)]
        return [job(0, 1)]
    if _workers["size"] != count:
        shutdown_workers()
        _workers["pool"] = concurrent.futures.ThreadPoolExecutor(count, "se_numpy_conv")
        _workers["size"] = count
    with blas_controller().limit(limits=1, user_api="blas"):
        futures = [_workers["pool"].submit(job, worker, count) for worker in range(count)]
        return [future.result() for future in futures]


def run_chunks(work, chunk_count, make_scratch, hold_blas=False):
    """``[work(chunk, scratch) for chunk in range(chunk_count)]``, computed by the workers.

    Each worker makes its own ``scratch = make_scratch()`` (its buffers) once,
    then takes the next chunk not yet taken until none is left."""
    results = [None] * chunk_count
    chunks, lock = itertools.count(), threading.Lock()

    def job(worker, count):
        scratch = make_scratch()
        while True:
            with lock:
                chunk = next(chunks)
            if chunk >= chunk_count:
                return
            results[chunk] = work(chunk, scratch)

    run_on_workers(job, chunk_count, hold_blas)
    return results


@atexit.register
def shutdown_workers():
    """Stop the worker threads (at exit, or before a pool of another size replaces them)."""
    pool, _workers["pool"], _workers["size"] = _workers["pool"], None, 0
    if pool is not None:
        pool.shutdown(wait=True)
