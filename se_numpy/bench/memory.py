"""The speed limit every SE kernel is measured against: this machine's memory bandwidth.

The SE kernels do one or two arithmetic operations per number they load, so
their time is set by how fast memory can deliver and accept bytes, not by the
CPU. We measure that limit in the same run, with two copies of a large array
(≥ 256 MB, far larger than any cache):

* ``np.copyto`` (the C library's ``memcpy``, which uses non-temporal stores:
  written lines go straight to memory without first being read into cache);
* a parallel Numba loop ``dst[i] = src[i]`` on every core (ordinary stores:
  each written cache line is first *read* from memory, "write-allocate", so
  the memory bus carries 3 bytes per 2 we count).

Both count 2 × size bytes (read the source, write the destination), and the
faster one is reported as the **copy bandwidth**. A read-only stream (a
parallel sum) is measured too, since a squeeze only reads.

``keep_freed_memory()`` makes glibc's ``malloc`` reuse freed memory for large
arrays instead of returning it to the OS. Without it every fresh 205 MB output
array is mapped page by page on first write (the kernel zeroes each 4 KB page,
an extra write pass), which costs more than the SE kernel itself and would
hide what the loops do. It applies to every backend in the process alike.
"""
import contextlib
import ctypes
import time

import numpy as np
from numba import njit, prange

# before the first parallel loop of the process: it sets OpenMP's wait policy
# (OMP_WAIT_POLICY=passive, kernels/numba/threads.py), read once when OpenMP starts
from ..kernels.numba import threads  # noqa: F401

GB = 1e9

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_GLIBC_DEFAULT_MMAP_MAX = 65536
_GLIBC_DEFAULT_TRIM_THRESHOLD = 128 * 1024


def best_time(function, repeats):
    """Best-of-``repeats`` wall time of ``function()`` in seconds (after one untimed warm-up).

    The minimum, not the mean: the noise on a shared machine (other processes,
    frequency changes) only ever adds time."""
    function()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


@njit(parallel=True, cache=True)
def _parallel_copy(source, destination):
    for i in prange(source.shape[0]):
        destination[i] = source[i]


@njit(parallel=True, fastmath={"reassoc"}, cache=True)
def _parallel_sum(values):
    total = 0.0
    for i in prange(values.shape[0]):
        total += values[i]
    return total


def measure_bandwidth(size_bytes=256 * 2 ** 20, repeats=10):
    """Copy and read bandwidth of this machine in GB/s (1 GB = 1e9 bytes).

    Returns a dict: ``numpy_copyto_GBps``, ``numba_parallel_copy_GBps``,
    ``copy_GBps`` (the better of the two), ``read_GBps``, ``size_bytes``."""
    count = size_bytes // 4
    source = np.random.default_rng(0).random(count, dtype=np.float32)
    destination = np.ones_like(source)     # touched, so page faults are not timed
    moved = 2 * source.nbytes               # read source + write destination
    copyto_seconds = best_time(lambda: np.copyto(destination, source), repeats)
    numba_seconds = best_time(lambda: _parallel_copy(source, destination), repeats)
    read_seconds = best_time(lambda: _parallel_sum(source), repeats)
    result = {"size_bytes": int(source.nbytes),
              "numpy_copyto_GBps": moved / copyto_seconds / GB,
              "numba_parallel_copy_GBps": moved / numba_seconds / GB,
              "read_GBps": source.nbytes / read_seconds / GB}
    result["copy_GBps"] = max(result["numpy_copyto_GBps"], result["numba_parallel_copy_GBps"])
    return result


def _glibc_mallopt():
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def keep_freed_memory():
    """Inside the block, glibc keeps freed large arrays for reuse (no fresh page faults).

    Yields a sentence saying what was done, for the benchmark's JSON; does
    nothing on systems without glibc's ``mallopt``."""
    mallopt = _glibc_mallopt()
    if mallopt is None:
        yield "system allocator unchanged (no glibc mallopt): fresh pages are faulted in per call"
        return
    mallopt(_M_MMAP_MAX, 0)                  # serve large arrays from the heap, not mmap
    mallopt(_M_TRIM_THRESHOLD, 2 ** 30)      # and do not hand freed heap back to the OS
    try:
        yield ("glibc mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=1 GiB): freed arrays are reused, "
               "so outputs are not page-faulted in on every call (all backends alike)")
    finally:
        mallopt(_M_MMAP_MAX, _GLIBC_DEFAULT_MMAP_MAX)
        mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_TRIM_THRESHOLD)


def measure_first_touch(size_bytes=256 * 2 ** 20, repeats=3):
    """GB/s of writing a *freshly allocated* array vs an already-mapped one.

    The gap is the page-fault cost that ``keep_freed_memory`` removes."""
    count = size_bytes // 4
    mapped = np.empty(count, dtype=np.float32)
    mapped.fill(0)
    fresh_seconds = best_time(lambda: np.empty(count, dtype=np.float32).fill(1), repeats)
    mapped_seconds = best_time(lambda: mapped.fill(1), repeats)
    return {"fresh_array_fill_GBps": mapped.nbytes / fresh_seconds / GB,
            "mapped_array_fill_GBps": mapped.nbytes / mapped_seconds / GB}
