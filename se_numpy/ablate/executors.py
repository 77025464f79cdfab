"""Where the runs execute: a local process pool, or an existing Dask distributed cluster.

Both take the same list of run specs (plain dicts) and call the same
``runs.execute_run`` on each, so a run's result does not depend on which one
ran it. Each local worker process is held to one BLAS and one Numba thread, so
``--workers N`` uses N cores without oversubscribing them; on Dask each task
holds its own worker thread to one thread the same way.

Dask (``pip install ".[dask]"``): start a scheduler on one machine and workers
on the others,

    dask scheduler                              # prints tcp://HOST:8786
    dask worker tcp://HOST:8786 --nthreads 1    # one per core, on every machine

and pass ``--scheduler tcp://HOST:8786``. The workers need se_numpy installed
and must be able to write the output directory (a shared file system, or the
same path on one machine).
"""
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
import multiprocessing

from .runs import execute_run, limit_threads

CONNECT_TIMEOUT_SECONDS = 5


def _progress(total, quiet):
    """A tqdm bar over runs on an interactive terminal (or None)."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="runs", unit="run", dynamic_ncols=True)


def _collect(futures, quiet, completed=as_completed):
    """Results in the order of ``futures`` (a dict future -> index), with a progress bar.

    ``completed`` yields the futures as they finish (Dask has its own ``as_completed``).
    """
    results = [None] * len(futures)
    bar = _progress(len(futures), quiet)
    for future in completed(list(futures)):
        results[futures[future]] = future.result()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return results


def _initialise_worker():
    # the whole worker process stays at one thread (each run also holds itself to one)
    limit_threads().__enter__()


def run_local(specs, out_dir, workers, quiet=False):
    """Run ``specs`` in ``workers`` fresh processes; returns their results in order."""
    if workers < 1:
        raise ValueError(f"workers: expected a positive number of processes, got {workers}")
    # "spawn": a fresh interpreter per worker, not a fork of this one with its
    # thread pools (BLAS, Numba) already started
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=_initialise_worker) as pool:
        futures = {pool.submit(execute_run, spec, out_dir): index
                   for index, spec in enumerate(specs)}
        try:
            return _collect(futures, quiet)
        except BaseException:
            # a failed run (or Ctrl-C) stops the ablation: drop the runs not yet started;
            # finished ones are on disk and a rerun picks up from there
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def connect(address):
    """A Dask ``Client`` for the scheduler at ``address``; a one-line error if it cannot be had."""
    try:
        from distributed import Client
    except ImportError:
        raise RuntimeError("--scheduler needs Dask: pip install \"se_numpy[dask]\" "
                           "(or \".[dask]\" in a clone)") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise RuntimeError(f"cannot reach the Dask scheduler at {address} within "
                           f"{CONNECT_TIMEOUT_SECONDS} s ({type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else 'no reply'})") from None


def run_dask(specs, out_dir, address, quiet=False):
    """Run ``specs`` on the Dask cluster at ``address``; returns their results in order."""
    from distributed import as_completed as dask_as_completed
    client = connect(address)
    try:
        # pure=False: two equal specs are still two tasks (there are none, but a
        # cached result must never stand in for a run that was asked for)
        futures = {client.submit(execute_run, spec, out_dir, pure=False): index
                   for index, spec in enumerate(specs)}
        with client.as_current():      # as_completed and result() look for a current client
            return _collect(futures, quiet, dask_as_completed)
    finally:
        client.close()
