"""Clip sampling and decoding: bounds, determinism, lying headers, padding, tutorial equivalence."""
from __future__ import annotations

import os
import struct

import cv2
import numpy as np
import pytest

from vidshard.decode import decode_clips, resize_with_pad
from vidshard.errors import DecodeError
from vidshard.sampling import ClipSpec, clip_indices, clip_starts
from vidshard.testing.synthetic import VideoSpec, motion_frames, write_video

SPEC = ClipSpec(n_frames=4, frame_step=3, height=32, width=40, clips_per_video=1, seed=0)


def _video_bytes(tmp_path, num_frames=40, fourcc="XVID", width=64, height=48, color=True, seed=1) -> bytes:
    spec = VideoSpec(total_frames=num_frames, width=width, height=height, fourcc=fourcc, color=color)
    path = write_video(tmp_path / f"v_{fourcc}_{num_frames}_{width}.avi", motion_frames(0.0, spec, seed), spec)
    return path.read_bytes()


def _with_claimed_count(data: bytes, count: int) -> bytes:
    """Rewrite the AVI's claimed frame count (main header and video stream header)."""
    patched = bytearray(data)
    assert patched[24:28] == b"avih"
    patched[48:52] = struct.pack("<I", count)
    strh = patched.find(b"strh")
    patched[strh + 8 + 32:strh + 8 + 36] = struct.pack("<I", count)
    return bytes(patched)


def _frame_count(data: bytes, tmp_path) -> tuple[int, int]:
    """(claimed, decodable) frame counts, measured with OpenCV directly."""
    path = tmp_path / "probe.avi"
    path.write_bytes(data)
    capture = cv2.VideoCapture(str(path))
    claimed, decodable = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0
    while capture.grab():
        decodable += 1
    capture.release()
    return claimed, decodable


def test_starts_cover_every_valid_start_and_never_overshoot():
    spec = ClipSpec(n_frames=4, frame_step=4, clips_per_video=1)  # span 13
    total = 20  # valid starts 0..7; the tutorial's randint(0, max_start + 1) can also give 8
    starts = {clip_starts(f"v{i}", total, spec)[0] for i in range(400)}
    assert starts == set(range(8))


def test_starts_are_a_pure_function_of_seed_video_and_clip():
    spec = ClipSpec(n_frames=2, frame_step=1, clips_per_video=3, seed=7)
    assert clip_starts("a.avi", 1000, spec) == clip_starts("a.avi", 1000, spec)
    other_seed = ClipSpec(n_frames=2, frame_step=1, clips_per_video=3, seed=8)
    ids = [f"v{i}.avi" for i in range(20)]
    assert [clip_starts(i, 1000, spec) for i in ids] != [clip_starts(i, 1000, other_seed) for i in ids]
    # clips of one video are drawn independently
    assert len({tuple(clip_starts(i, 1000, spec)) for i in ids}) == 20


def test_short_video_is_padded_with_minus_one():
    indices = clip_indices("x", 5, ClipSpec(n_frames=4, frame_step=2))
    assert indices.tolist() == [[0, 2, 4, -1]]


@pytest.mark.parametrize("bad", [0, -1])
def test_clip_spec_rejects_non_positive_values(bad):
    with pytest.raises(ValueError, match="n_frames"):
        ClipSpec(n_frames=bad)


@pytest.mark.parametrize("shape,out", [((48, 64), (32, 40)), ((240, 320), (224, 224)), ((64, 48), (30, 50)), ((10, 12), (40, 40))])
def test_resize_with_pad_matches_tensorflow(shape, out):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=shape + (3,), dtype=np.uint8)
    ours = resize_with_pad(image, *out).astype(int)
    theirs = tf.image.resize_with_pad(tf.image.convert_image_dtype(image, tf.float32), *out).numpy()
    theirs = np.round(theirs * 255).astype(int)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1


@pytest.mark.parametrize("fourcc,spec", [
    ("MJPG", SPEC),  # intra-only: the tutorial's seek is exact, so a start past 0 compares
    ("XVID", ClipSpec(n_frames=14, frame_step=3, height=32, width=40)),  # span 40 of 40 frames: start 0
])
def test_same_pixels_as_the_tutorial_for_the_same_start(tmp_path, fourcc, spec):
    tutorial = pytest.importorskip("vidshard.bench.tutorial")  # needs TensorFlow
    data = _video_bytes(tmp_path, fourcc=fourcc)
    path = tmp_path / "same.avi"
    path.write_bytes(data)
    video_id = next(f"v{i}.avi" for i in range(100) if clip_starts(f"v{i}.avi", 40, spec)[0] > 0 or spec.span == 40)
    frames, indices, *_ = decode_clips(data, video_id, spec)
    start = int(indices[0, 0])
    assert (start > 0) == (fourcc == "MJPG")
    theirs = tutorial.frames_from_video_file(path, spec.n_frames, (spec.height, spec.width), spec.frame_step, start)
    assert np.abs(frames[0].astype(int) - np.round(theirs * 255).astype(int)).max() <= 1


@pytest.mark.parametrize("claimed", [10, 100])
def test_lying_header_gives_the_clip_of_the_true_count(tmp_path, claimed):
    data = _video_bytes(tmp_path)
    lying = _with_claimed_count(data, claimed)
    assert _frame_count(lying, tmp_path) == (claimed, 40)
    spec = ClipSpec(n_frames=4, frame_step=5, height=24, width=32, clips_per_video=3, seed=3)
    truth_frames, truth_indices, *_ = decode_clips(data, "v.avi", spec)
    frames, indices, *_ = decode_clips(lying, "v.avi", spec)
    assert np.array_equal(indices, clip_indices("v.avi", 40, spec))
    assert np.array_equal(indices, truth_indices)
    assert (indices >= 0).all()  # 40 real frames: nothing padded even though the header says 10
    assert np.array_equal(frames, truth_frames)


def _with_index_entries(data: bytes, entries: int) -> bytes:
    """Rewrite the AVI's idx1 index to list ``entries`` frames (cut short, or padded with copies)."""
    at = data.rfind(b"idx1")
    size = struct.unpack("<I", data[at + 4:at + 8])[0]
    table = data[at + 8:at + 8 + size]
    table = (table * (entries // (size // 16) + 1))[:16 * entries]
    return data[:at + 4] + struct.pack("<I", len(table)) + table


@pytest.mark.parametrize("entries, claimed", [(20, 40), (55, 60), (40, 12)])
def test_index_and_header_that_disagree_with_the_stream_give_the_clip_of_the_stream(tmp_path, entries, claimed):
    from vidshard.decode import probe

    data = _video_bytes(tmp_path)
    lying = _with_claimed_count(_with_index_entries(data, entries), claimed)
    assert _frame_count(lying, tmp_path) == (claimed, 40)
    probe_path = tmp_path / "lying.avi"
    probe_path.write_bytes(lying)
    assert probe(str(probe_path))[0] == 40  # counted from the stream, not the index or the header
    spec = ClipSpec(n_frames=5, frame_step=4, height=24, width=32, clips_per_video=2, seed=5)
    truth_frames, truth_indices, *_ = decode_clips(data, "v.avi", spec)
    frames, indices, *_ = decode_clips(lying, "v.avi", spec)
    assert np.array_equal(indices, clip_indices("v.avi", 40, spec)) and np.array_equal(indices, truth_indices)
    assert np.array_equal(frames, truth_frames)


def test_truncated_video_uses_the_frames_that_decode_and_pads_the_rest(tmp_path):
    data = _video_bytes(tmp_path, fourcc="MJPG")
    truncated = data[: len(data) // 2]
    claimed, decodable = _frame_count(truncated, tmp_path)
    assert claimed == 40 and 0 < decodable < 40
    spec = ClipSpec(n_frames=10, frame_step=5, height=24, width=32)  # span 46 > 40: start 0
    frames, indices, *_ = decode_clips(truncated, "t.avi", spec)
    expected = np.arange(10) * 5
    expected[expected >= decodable] = -1
    assert indices[0].tolist() == expected.tolist()
    assert not frames[0][indices[0] == -1].any()  # padded positions are zeros
    assert frames[0][indices[0] >= 0].any(axis=(1, 2, 3)).all()  # real positions are not


def test_grayscale_and_large_videos_decode_to_rgb_of_the_requested_size(tmp_path):
    gray = _video_bytes(tmp_path, color=False, fourcc="MJPG")
    frames, *_ = decode_clips(gray, "g.avi", SPEC)
    assert frames.shape == (1, 4, 32, 40, 3)
    assert np.array_equal(frames[..., 0], frames[..., 1])  # gray stays gray in RGB
    large = _video_bytes(tmp_path, num_frames=12, width=1280, height=720, fourcc="MJPG")
    frames, indices, *_ = decode_clips(large, "l.avi", SPEC)
    assert frames.shape == (1, 4, 32, 40, 3) and (indices >= 0).all()


@pytest.mark.parametrize("make,reason", [
    (lambda data: b"", "empty"),
    (lambda data: os.urandom(5000), "no frame"),
    (lambda data: data[:300], "no frame"),
])
def test_undecodable_input_raises_decode_error(tmp_path, make, reason):
    data = _video_bytes(tmp_path)
    with pytest.raises(DecodeError, match=reason):
        decode_clips(make(data), "bad.avi", SPEC)
