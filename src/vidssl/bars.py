"""The progress-bar class of vidssl, library and application alike.

tqdm starts one "monitor" thread per bar class that wakes every 10 s and takes tqdm's
global lock (a threading lock plus a multiprocessing one). Data loaders fork their workers
from this process: a fork while a monitor holds that lock leaves the child's copy locked for
good, and a monitor outlives every bar that was never closed (a test run held two, of two
bar classes, until it ended). vidssl's bars run without the thread (tqdm's documented
``monitor_interval = 0``), set on this subclass only, so that other code's bars keep theirs.
Without the monitor a bar redraws when it is updated, never from a timer.
"""

from __future__ import annotations

from tqdm.auto import tqdm

__all__ = ["ProgressBar"]


class ProgressBar(tqdm):
    """``tqdm.auto.tqdm`` (a widget in notebooks, text elsewhere) without the monitor thread."""

    monitor_interval = 0
