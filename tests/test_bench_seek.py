"""A smoke run of issue 23's long-video measurements (``python -m vidshard.bench.seek``) at tiny sizes.

Timings are never asserted; what is asserted is what the figures rest on: the seeking decode and
the decode from frame 0 store the same frames, and the frames each one (and the floor) decoded.
"""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

pytest.importorskip("av")

from vidshard.bench.seek import SeekConfig, measure_kinetics, measure_seek  # noqa: E402
from vidshard.decode import decode_clips  # noqa: E402
from vidshard.sampling import ClipSpec  # noqa: E402

#: 6 s at 30 fps with a keyframe every 30 frames; the segment 4-5 s is frames 120..149.
TINY = dict(width=64, height=48, gop=30, long_minutes=0.1, segment_start=4.0, segment_seconds=1.0,
            n_frames=4, size=24, repeats=1)


def test_seek_row_decodes_from_the_segment_keyframe_and_matches_a_decode_from_frame_0(tmp_path):
    result = measure_seek(SeekConfig(str(tmp_path), **TINY), lambda _line: None)
    assert result["video"]["frames"] == 180 and result["seeked"]
    assert result["segment_keyframe"] == 120
    clip = np.asarray(result["clip_frames"])
    assert clip.min() >= 120 and clip.max() < 150
    decoded = result["decoded_frames"]
    assert decoded["floor"] == 31  # frames 120..150: the segment's GOP, up to the first frame past its end
    assert decoded["vidshard"] <= clip.max() - 120 + 1 + 1  # from the keyframe, at most one frame of slack
    assert decoded["from_frame_0"] == clip.max() + 1
    for value in (*result["cpu_seconds"].values(), result["ratio_from_frame_0"], result["ratio_to_floor"]):
        assert math.isfinite(value) and value > 0
    # The ratio compares like with like: the same frames either way.
    data = (tmp_path / "long.mp4").read_bytes()
    spec = ClipSpec(n_frames=4, height=24, width=24, sampling="segments")
    ours = decode_clips(data, result["video"]["segment"], spec, "val")
    sequential = decode_clips(data, result["video"]["segment"], spec, "val", seek=False)
    assert ours.seeked and not sequential.seeked
    assert np.array_equal(ours.indices, sequential.indices) and np.array_equal(ours.frames, sequential.frames)


@pytest.mark.slow
def test_kinetics_row_shards_every_segment_of_a_kinetics_csv(tmp_path):
    config = SeekConfig(str(tmp_path), **{**TINY, "segment_seconds": 2.0}, kinetics_videos=2,
                        kinetics_seconds=6.0, segments_per_video=2)
    result = measure_kinetics(config, lambda _line: None)
    with open(tmp_path / "kinetics_train.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["label", "youtube_id", "time_start", "time_end", "split"]
    assert result["segments"] == len(rows) == 4 and result["written"] == 4 and result["failed"] == 0
    assert result["ratio"] > 0 and "--path-template {youtube_id}.mp4" in result["command"]
