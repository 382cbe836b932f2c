"""Today's codecs, variable frame rates and decoding from the nearest keyframe (issue 23, items 3-5).

Every video is written by PyAV (:mod:`vidshard.testing.codecs`) and every stored frame is checked
against an independent decode with PyAV: the frame it says it took, at the time it says.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

av = pytest.importorskip("av")

from vidshard.decode import DecodedVideo, _seek_scan, decode_clips, probe, resize_with_pad  # noqa: E402
from vidshard.sampling import ClipSpec  # noqa: E402
from vidshard.testing.codecs import CODECS, GOP, available, vfr_times, write_codec_video  # noqa: E402

SPECS = {
    "step": ClipSpec(n_frames=4, frame_step=3, height=32, width=40, clips_per_video=3, eval_clips=3),
    "time": ClipSpec(n_frames=4, height=32, width=40, sampling="time", fps=6.0, clips_per_video=2),
    "segments": ClipSpec(n_frames=5, height=32, width=40, sampling="segments", clips_per_video=2),
}
#: Whole video, a segment that starts in the fourth GOP, a segment with only a start.
IDS = ("", "#t=1.1,1.9", "#t=0.5")


def independent(path, spec: ClipSpec) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every frame's time and letterboxed RGB pixels, decoded by PyAV from the start."""
    times, frames = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            times.append(float(frame.pts * frame.time_base))
            bgr = frame.to_ndarray(format="bgr24")
            frames.append(cv2.cvtColor(resize_with_pad(bgr, spec.height, spec.width), cv2.COLOR_BGR2RGB))
    return np.asarray(times) - times[0], frames


def assert_matches(decoded: DecodedVideo, truth: tuple[np.ndarray, list[np.ndarray]]) -> None:
    times, frames = truth
    assert decoded.total_frames == len(frames)
    for clip, row in enumerate(decoded.indices):
        for position, index in enumerate(row):
            if index < 0:
                assert not decoded.frames[clip, position].any() and decoded.times[clip, position] == -1
                continue
            assert np.array_equal(decoded.frames[clip, position], frames[index]), (clip, position, index)
            assert abs(decoded.times[clip, position] - times[index]) < 1e-3


def _case(tmp_path, name: str, **kwargs):
    if not available(name):
        pytest.skip(f"this PyAV's FFmpeg has no {CODECS[name].encoder} encoder")
    return write_codec_video(tmp_path / f"{name}{CODECS[name].suffix}", name, **kwargs)


@pytest.mark.parametrize("name", list(CODECS))
def test_every_codec_stores_the_frames_an_independent_decode_gives(tmp_path, name):
    path = _case(tmp_path, name)
    data = path.read_bytes()
    truth = independent(path, SPECS["step"])
    assert probe(str(path)).packets == len(truth[1]) == 60
    for sampling, spec in SPECS.items():
        for fragment in IDS:
            for split in ("train", "test"):
                decoded = decode_clips(data, path.name + fragment, spec, split)
                assert_matches(decoded, truth)
                if fragment.startswith("#t=1.1"):  # frames 33 .. 56 only
                    assert decoded.indices.min() >= 33 and decoded.indices.max() <= 56


@pytest.mark.parametrize("name", [name for name, case in CODECS.items() if case.suffix != ".avi"])
def test_a_late_segment_is_decoded_from_the_keyframe_before_it(tmp_path, name):
    """Bit for bit the frames of a decode from frame 0, numbered as it numbers them, for fewer decoded frames."""
    path = _case(tmp_path, name)
    truth = independent(path, SPECS["step"])
    spec = ClipSpec(n_frames=4, frame_step=2, height=32, width=40, eval_clips=1)
    decoded = decode_clips(path.read_bytes(), path.name + "#t=1.5,2", spec, "test")
    assert_matches(decoded, truth)
    assert decoded.seeked and decoded.indices.min() >= 45
    # Decoding started at the keyframe before frame 45 (frame 36 of GOPs of 12), not at frame 0.
    assert decoded.decoded_frames <= decoded.indices.max() + 1 - 3 * GOP


def test_open_gop_h264_with_b_frames_has_leading_frames_and_still_matches(tmp_path):
    path = _case(tmp_path, "h264")
    with av.open(str(path)) as container:
        packets = [(p.pts, p.is_keyframe) for p in container.demux(video=0) if p.size]
    decode_order = [pts for pts, _ in packets]
    assert decode_order != sorted(decode_order)  # B-frames: packets come out of presentation order
    keys = [i for i, (pts, key) in enumerate(packets) if key and i]
    # Open GOP: a later keyframe is followed in decode order by frames shown before it.
    assert any(packets[i + 1][0] < packets[i][0] for i in keys)
    truth = independent(path, SPECS["step"])
    for start in np.arange(0.3, 1.9, 0.1):  # segments starting in every GOP, around every keyframe
        spec = ClipSpec(n_frames=3, frame_step=1, height=32, width=40, eval_clips=1)
        for split in ("train", "test"):
            assert_matches(decode_clips(path.read_bytes(), f"{path.name}#t={start:.1f}", spec, split), truth)


def test_a_video_with_an_audio_track(tmp_path):
    path = _case(tmp_path, "h264", audio=True)
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 1
    truth = independent(path, SPECS["step"])
    for fragment in IDS:
        decoded = decode_clips(path.read_bytes(), path.name + fragment, SPECS["time"], "test")
        assert_matches(decoded, truth)
        assert decoded.total_frames == 60


def test_variable_frame_rate_time_sampling_follows_the_frame_times(tmp_path):
    """The issue's file: 30 frames 1/30 s apart, then 30 frames 1/5 s apart; --sampling time --fps 2."""
    times = vfr_times()
    path = _case(tmp_path, "h264", times=times)
    truth = independent(path, SPECS["step"])
    np.testing.assert_allclose(truth[0], times, atol=1e-3)
    spec = ClipSpec(n_frames=8, height=32, width=40, sampling="time", fps=2.0, clips_per_video=3)
    for split in ("train", "test"):
        decoded = decode_clips(path.read_bytes(), path.name, spec, split)
        assert_matches(decoded, truth)
        for row, stamps in zip(decoded.indices, decoded.times):
            assert (row >= 0).all()
            asked = stamps[0] + np.arange(8) / 2.0
            # Each frame is the one nearest its asked time: within half the local frame interval.
            assert np.all(np.abs(stamps - asked) <= 0.1 + 1e-3), stamps
            # The nearest frame; a tie (2.5 s between 2.4 and 2.6) goes to the later one, as floor(x + 0.5) does.
            nearest = [max(range(len(times)), key=lambda i: (-round(abs(times[i] - t), 6), i)) for t in asked]
            assert row.tolist() == nearest
    # Frame numbering by index / fps (the old rule) would have taken frames 0.13 s apart at the start.
    assert abs(decoded.source_fps - 59 / times[-1]) < 1e-6


def test_a_variable_rate_segment_is_cut_by_frame_times(tmp_path):
    times = vfr_times()
    path = _case(tmp_path, "h264", times=times)
    truth = independent(path, SPECS["step"])
    spec = ClipSpec(n_frames=4, frame_step=1, height=32, width=40, eval_clips=1)
    # 2 s to 3 s: frames at 2.0, 2.2, ..., 2.8 (numbers 35 .. 39); by 30 fps arithmetic it would be frames 60+.
    decoded = decode_clips(path.read_bytes(), path.name + "#t=2,3", spec, "test")
    assert_matches(decoded, truth)
    assert decoded.indices.min() >= 35 and decoded.indices.max() <= 39
    assert decoded.seeked  # OpenCV's seek by average rate lands off on this stream; frame times place it


@pytest.mark.parametrize("suffix", [".avi", ".ts"])
def test_containers_without_a_reliable_index_are_decoded_from_frame_0(tmp_path, suffix):
    """AVI's index is optional and MPEG-TS has none: no seek is tried, the scan runs from frame 0."""
    if suffix == ".avi":  # MPEG-4 Part 2 with B-frames, GOPs of 12, as XviD writes AVIs
        other = write_codec_video(tmp_path / "mpeg4.avi", "mpeg4")
    else:  # the H.264 case's packets, remuxed
        mp4 = _case(tmp_path, "h264")
        other = tmp_path / "remuxed.ts"
        with av.open(str(mp4)) as source, av.open(str(other), "w") as target:
            stream = target.add_stream_from_template(source.streams.video[0])
            for packet in source.demux(video=0):
                if packet.size:
                    packet.stream = stream
                    target.mux(packet)
    truth = independent(other, SPECS["step"])
    spec = ClipSpec(n_frames=4, frame_step=2, height=32, width=40, eval_clips=1)
    decoded = decode_clips(other.read_bytes(), other.name + "#t=1.5,2", spec, "test")
    assert_matches(decoded, truth)
    assert decoded.indices.min() >= 45
    assert not decoded.seeked and decoded.decoded_frames == decoded.indices.max() + 1


def test_a_seek_it_cannot_vouch_for_gives_way_to_the_sequential_scan(tmp_path):
    """Times the stream does not show (here: the probe's, shifted by 5 ms) make the seek give up."""
    path = _case(tmp_path, "h264")
    probed = probe(str(path))
    wanted = np.array([40, 42])
    assert _seek_scan(str(path), wanted, SPECS["step"], probed.times, probed.keyframes) is not None
    assert _seek_scan(str(path), wanted, SPECS["step"], probed.times + 0.005, probed.keyframes) is None


def test_frame_times_are_stored_by_version_5_records_and_older_records_still_parse():
    from vidshard.format.schema import ClipRecord, encode_example, parse_example

    frames = np.zeros((2, 3, 4, 4, 3), np.uint8)
    indices = np.array([[0, 5, -1], [2, 7, -1]])
    times = np.array([[0.0, 0.5, -1.0], [0.2, 0.7, -1.0]])
    new = parse_example(encode_example(ClipRecord("v.mp4#t=0,1", 0, "a", frames, indices, 10.0, 8, times), "raw"), "raw")
    np.testing.assert_allclose(new.frame_times, times, atol=1e-6)
    old = parse_example(encode_example(ClipRecord("v.mp4", 0, "a", frames, indices, 10.0, 8), "raw"), "raw")
    assert old.frame_times is None and old.source_fps == 10.0  # a version 4 record
