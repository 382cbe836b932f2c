"""The launcher's progress bar: videos done of total, failed so far, clips/s and ETA, while Beam runs.

Beam runners differ in what they show while a job runs (the DirectRunner's ``run()`` blocks until
the end; DaskRunner serves no metrics at all), but every runner's workers stage each video's
outcome as a file in the output (:mod:`vidshard.pipelines.staging`) the moment it is known.  So a thread
started before ``pipeline.run()`` lists that folder now and then and moves a ``tqdm`` bar (on
stderr); that works the same for a local DirectRunner and for a remote runner writing to
``gs://``, and the workers do nothing extra for it.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from types import TracebackType
from typing import TextIO

from tqdm.auto import tqdm  # a widget in Jupyter, text on a terminal

from vidshard.pipelines import shardio, staging

#: Seconds between two listings: a local folder is cheap to list; an object store is listed
#: page by page (1,000 names per request), so less often.
LOCAL_INTERVAL = 0.5
REMOTE_INTERVAL = 5.0
#: At most this share of one core goes to listing: a local listing of 13,320 staged files (all of
#: UCF101) costs about 20 ms of CPU, so near the end of such a job the bar updates once a second.
MAX_LISTING_SHARE = 0.02
#: The bar's width on a terminal that reports none.
FALLBACK_COLUMNS = 80


def _columns(stream: TextIO) -> int:
    """The width the terminal behind ``stream`` reports (0 when it reports none or is no terminal)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


class StagedProgress:
    """A context manager that shows a live bar for a running job (or nothing, when ``enabled`` is false)."""

    def __init__(self, data_dir: str, total: int, clips_per_video: float, enabled: bool,
                 stream: TextIO | None = None) -> None:
        self._data_dir = data_dir
        self._total = total
        self._clips_per_video = clips_per_video
        self._enabled = enabled
        self._stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: tqdm | None = None
        self._started = 0.0
        self._first = 0

    def __enter__(self) -> "StagedProgress":
        if not self._enabled:
            return self
        self._first, failed = staging.count_outcomes(self._data_dir)  # outcomes reused from an earlier run
        self._started = time.monotonic()
        # The first state is drawn now, before the pipeline starts, with its postfix: the count it
        # starts from (0, or what --resume reuses) is on screen however fast the job then runs.
        # A terminal that reports 0 columns (a fresh pseudo-terminal, some CI) gets a fixed width, not nothing.
        width = {"dynamic_ncols": True} if _columns(self._stream) else {"ncols": FALLBACK_COLUMNS}
        self._bar = tqdm(total=self._total, initial=self._first, unit="video", desc="Sharding",
                         file=self._stream, leave=True, postfix=self._postfix(failed, 0.0), **width)
        interval = LOCAL_INTERVAL if shardio.is_local(self._data_dir) else REMOTE_INTERVAL
        self._thread = threading.Thread(target=self._poll, args=(interval,), name="vidshard-progress", daemon=True)
        self._thread.start()
        return self

    def _poll(self, interval: float) -> None:
        wait = interval
        while not self._stop.wait(wait):
            started = time.thread_time()
            self._show(*staging.count_outcomes(self._data_dir))
            wait = max(interval, (time.thread_time() - started) / MAX_LISTING_SHARE)

    @staticmethod
    def _postfix(failed: int, clips_per_second: float) -> str:
        return f"{failed} failed, {clips_per_second:.1f} clips/s"

    def _show(self, done: int, failed: int) -> None:
        assert self._bar is not None
        elapsed = time.monotonic() - self._started
        clips = (done - self._first) * self._clips_per_video / elapsed if elapsed > 0 else 0.0
        self._bar.set_postfix_str(self._postfix(failed, clips), refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        """Stop polling and leave the bar at the final count on its own line; later calls do nothing.

        ``__exit__`` calls it; so does the launcher's signal handler, before its one line.
        """
        if self._bar is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._show(*staging.count_outcomes(self._data_dir))  # the final count, N/N after a complete run
        self._bar.close()
        self._bar = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
