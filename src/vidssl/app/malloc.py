"""glibc malloc settings for the training and evaluation processes.

A train step frees and reallocates the same large activation and gradient buffers every step.
glibc serves blocks above its mmap threshold (dynamic, 128 KiB up to 32 MiB) with ``mmap``
and gives them back with ``munmap`` when freed, so every step page-faults them in again (and
the kernel zeroes each page); freed memory at the top of the heap above the trim threshold is
returned to the OS as well. With a high mmap threshold and trim threshold the buffers stay in
the heap and are reused: for the CPU bench's MTCL row, 3.4-4.5x fewer minor page faults and
5-8 % less CPU time (docs/performance.md has the numbers and the commands).

The cost is memory that the process keeps after a peak instead of giving it back (the peak
itself, VmHWM, is measured in docs/performance.md). ``VIDSSL_MALLOC=0`` turns it off; an
explicit ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` / ``GLIBC_TUNABLES`` malloc
setting of the user wins. On other C libraries (macOS, Windows, musl) it does nothing.

``mallopt`` changes the allocator of the whole process; DataLoader workers forked later
inherit it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

ENV_SWITCH = "VIDSSL_MALLOC"  # "0" (or "off" / "false" / "no") turns the settings off
M_TRIM_THRESHOLD = -1  # mallopt parameter numbers of glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
# Blocks up to 1 GiB come from the heap (a bench step's largest tensor is a few MiB; full-size
# clips of batch 8 at 112 px reach ~100 MiB); freed heap top is kept up to 1 GiB. mallopt
# takes a C int, so neither can exceed 2 GiB - 1.
THRESHOLD_BYTES = 1 << 30
SETTINGS: dict[str, int] = {
    "M_MMAP_THRESHOLD": M_MMAP_THRESHOLD,
    "M_TRIM_THRESHOLD": M_TRIM_THRESHOLD,
}
# environment variables by which the user already chose glibc malloc settings
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
OFF_VALUES = frozenset({"0", "off", "false", "no"})


def enabled(environ: dict[str, str] | None = None) -> bool:
    """False when ``VIDSSL_MALLOC`` is 0 / off / false / no, or the user set glibc's own
    malloc variables (theirs win)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_SWITCH, "1").strip().lower() in OFF_VALUES:
        log.debug("malloc settings off (%s=%s)", ENV_SWITCH, env[ENV_SWITCH])
        return False
    user = [name for name in USER_SETTINGS if name in env]
    if user or "glibc.malloc." in env.get("GLIBC_TUNABLES", ""):
        log.debug("malloc settings left to the environment (%s)", user or "GLIBC_TUNABLES")
        return False
    return True


def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (it exports ``gnu_get_libc_version``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def tune_malloc(environ: dict[str, str] | None = None) -> bool:
    """Set glibc's mmap and trim thresholds to :data:`THRESHOLD_BYTES` for this process.

    Returns True when both ``mallopt`` calls succeeded; False (and nothing changed) when turned
    off (:func:`enabled`) or not on glibc (a debug log, never an error). A refused call (glibc
    returns 0) is logged as a warning.
    """
    if not enabled(environ):
        return False
    libc = _glibc()
    if libc is None:
        log.debug("malloc settings skipped: not glibc (%s)", sys.platform)
        return False
    ok = True
    for name, param in SETTINGS.items():
        if libc.mallopt(param, THRESHOLD_BYTES) != 1:
            log.warning("mallopt(%s, %d) was refused by the C library", name, THRESHOLD_BYTES)
            ok = False
    if ok:
        log.debug("malloc: mmap and trim thresholds set to %d bytes", THRESHOLD_BYTES)
    return ok
