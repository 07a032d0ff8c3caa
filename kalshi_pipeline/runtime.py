"""Process-level settings for array-heavy work, applied by the entry points.

glibc hands every freed block above 32 MiB straight back to the operating system, so a
numpy pipeline whose temporaries exceed that (a session of a few million events) faults
fresh pages for each of them, every time: on a VM that alone made building views for 4x
the events take 5x the time. :func:`keep_freed_memory` raises glibc's mmap and trim
thresholds so freed buffers stay in the process heap and the next temporary reuses them;
the process then keeps its peak memory reserved until it exits, which suits a pipeline
worker. On other C libraries it does nothing. :func:`log_errors` sets up the command's
log on stderr.

The CLI, the Dagster code location and the benchmarks call it; library functions never
change process settings on their own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_ONE_GIB = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Keep freed blocks of up to 1 GiB in the heap. True if the C library took it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _ONE_GIB)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * _ONE_GIB)
    )


def log_errors(debug: bool) -> None:
    """Libraries' errors go to stderr, one line each; ``debug`` adds the package's info.

    An interrupt is said once, by the command's own line: without ``debug``, a record
    that carries a ``KeyboardInterrupt`` (a library logging the interrupt that passes
    through it, as SQLAlchemy does when SIGINT stops a connection's close) is dropped.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not debug:
        handler.addFilter(_not_an_interrupt)
    logging.basicConfig(level=logging.ERROR, handlers=[handler])
    if debug:
        logging.getLogger("kalshi_pipeline").setLevel(logging.INFO)


def _not_an_interrupt(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))
