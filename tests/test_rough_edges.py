"""Issue 19's small rough edges that have no other home: a stored frame rate reads back as the number
written, and the progress bar draws on a terminal that reports zero columns."""
from __future__ import annotations

import os
import pty
import select

import numpy as np
import pytest

from vidshard.format.schema import ClipRecord, encode_example, parse_example
from vidshard.pipelines.progress import StagedProgress


@pytest.mark.parametrize("fps", [29.97, 25.0, 30000 / 1001, 59.94])
def test_a_stored_frame_rate_reads_back_as_the_decimal_it_stores(fps):
    """source_fps is a float32 in the Example: 29.97 reads back as 29.97, not 29.969999313354492, and
    writing what was read gives the same bytes."""
    frames = np.zeros((1, 2, 4, 4, 3), np.uint8)
    record = ClipRecord("v.avi", 0, "a", frames, np.array([[0, 5]]), source_fps=fps, source_frames=100)
    stored = encode_example(record, "png")
    back = parse_example(stored, "png")
    assert back.source_fps == float(str(np.float32(fps)))
    assert np.float32(back.source_fps) == np.float32(fps)  # the same float32
    assert encode_example(back, "png") == stored
    if fps == 29.97:
        assert back.source_fps == 29.97 and repr(back.source_fps) == "29.97"


def test_the_progress_bar_draws_on_a_terminal_that_reports_zero_columns(tmp_path):
    """A fresh pseudo-terminal reports 0 columns and 0 rows, as some CI terminals do."""
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=True) as stream:
            assert os.get_terminal_size(stream.fileno()).columns == 0
            with StagedProgress(str(tmp_path), total=3, clips_per_video=1.0, enabled=True, stream=stream):
                pass
            stream.flush()
            assert select.select([master], [], [], 30)[0]  # written already: a guard against blocking, not a wait
            drawn = os.read(master, 65536).decode("utf-8", "replace")
    finally:
        os.close(master)
    assert "Sharding" in drawn and "0/3" in drawn, repr(drawn)
