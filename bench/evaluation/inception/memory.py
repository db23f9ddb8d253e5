"""A glibc allocator setting that keeps freed memory for reuse during the Inception forward."""

from __future__ import annotations

import contextlib
import ctypes
import platform

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters
_heap_depth = 0


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def reuse_freed_memory():
    """Within the block, glibc keeps freed memory for reuse instead of unmapping it.

    Each layer's output is a fresh allocation of up to ~100 MB; glibc serves those
    with ``mmap`` and returns them on ``free``, so every one is page-faulted anew
    (measured here: 65 ms to allocate and fill 88 MB, 7.5 ms to refill it). With
    ``mallopt(M_MMAP_MAX, 0)`` and a high ``M_TRIM_THRESHOLD`` they come from the heap
    and are reused by later layers and batches (~10-15% faster forward here). On exit
    glibc's defaults (65536 mmaps, 128 KiB trim threshold) are restored and the heap
    is trimmed with ``malloc_trim(0)``. No-op outside Linux/glibc. Results are
    unaffected (only where memory comes from changes). Yields whether it is active.
    """
    global _heap_depth
    libc = _glibc()
    if libc is None:
        yield False
        return
    if _heap_depth == 0:
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    _heap_depth += 1
    try:
        yield True
    finally:
        _heap_depth -= 1
        if _heap_depth == 0:
            libc.mallopt(_M_MMAP_MAX, 65536)
            libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
            libc.malloc_trim(0)

