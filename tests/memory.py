"""Give freed memory back to the operating system, so that a test's peak is its own.

After a large model is freed, glibc's allocator keeps much of its memory
mapped for reuse: the process's resident size stays near its peak, and the
next large model is counted on top of it. ``malloc_trim(0)`` returns the free
pages. The suite runs in two workers under one memory budget, so the tests
that build ImageNet-size models call this between them.
"""
import ctypes
import ctypes.util
import gc

_name = ctypes.util.find_library("c")
try:
    _malloc_trim = ctypes.CDLL(_name).malloc_trim if _name else None
except (OSError, AttributeError):         # not glibc (macOS, musl): nothing to trim
    _malloc_trim = None


def release_memory():
    """Collect garbage, then hand the allocator's free pages back (glibc only)."""
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)
