"""Issue 6 end to end: hostile media and network faults through the real Beam pipeline.

Every selected video must end in exactly one of the shards or ``errors.jsonl`` (with a reason),
and the job must complete; the unit-level cases live in test_sources, test_network_faults and
test_sampling_decode.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vidshard.catalog import build_catalog
from vidshard.cli import main
from vidshard.cli.selection import plan_from_options
from vidshard.format.info import ERRORS_FILE, load_info
from vidshard.format.schema import parse_example
from vidshard.format.tfrecord import iter_records
from vidshard.pipelines.launch import ShardRequest, run_job
from vidshard.pipelines.transforms import EncodeSettings
from vidshard.sampling import ClipSpec, clip_indices
from vidshard.sources import SourceOptions, open_source
from vidshard.testing.rangeserver import Faults, RangeServer
from vidshard.testing.synthetic import VideoSpec, make_ucf_zip, motion_frames, write_video

from test_sampling_decode import _with_claimed_count

SPEC = ClipSpec(n_frames=4, frame_step=3, height=24, width=32, clips_per_video=1, seed=1)  # span 10
BEAM = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]


def _video(tmp: Path, name: str, frames: int, fourcc: str = "MJPG", width: int = 64, height: int = 48,
           color: bool = True) -> bytes:
    spec = VideoSpec(total_frames=frames, width=width, height=height, fourcc=fourcc, color=color)
    return write_video(tmp / name, motion_frames(0.5, spec, seed=frames), spec).read_bytes()


def _media_zoo(tmp: Path) -> dict[str, tuple[bytes, str]]:
    """member name -> (bytes, expected outcome: 'written' or the errors.jsonl stage)."""
    normal = _video(tmp, "n.avi", 40)
    return {
        "UCF101/v_Zoo_g01_c01.avi": (b"", "decode"),  # zero bytes
        "UCF101/v_Zoo_g01_c02.avi": (os.urandom(20_000), "decode"),  # random bytes named .avi
        "UCF101/v_Zoo_g01_c03.avi": (normal[: len(normal) // 2], "written"),  # truncated mid-stream
        "UCF101/v_Zoo_g02_c01.avi": (_with_claimed_count(normal, 400), "written"),  # header claims more frames
        "UCF101/v_Zoo_g02_c02.avi": (_with_claimed_count(normal, 3), "written"),  # header claims fewer frames
        "UCF101/v_Zoo_g02_c03.avi": (_video(tmp, "s.avi", 5), "written"),  # shorter than one clip
        "UCF101/v_Zoo_g03_c01.avi": (_video(tmp, "1.avi", 1), "written"),  # a single frame
        "UCF101/v_Zoo_g03_c02.avi": (_video(tmp, "g.avi", 12, color=False), "written"),  # grayscale
        "UCF101/v_Zoo_g03_c03.avi": (_video(tmp, "4k.avi", 2, width=3840, height=2160), "written"),  # 4K
        "UCF101/v_Zoo_g04_c01.avi": (_video(tmp, "f.avi", 12, fourcc="FFV1"), "written"),  # lossless FFV1
        "UCF101/v_Zoo_g04_c02.mp4": (_video(tmp, "m.mp4", 12, fourcc="mp4v"), "written"),  # MPEG-4 in MP4
        "UCF101/v_Zoo_g04_c03.webm": (_video(tmp, "w.webm", 12, fourcc="VP80"), "written"),  # VP8 in WebM
    }


def _stored(output: Path) -> dict[str, object]:
    info = load_info(str(output))
    records = {}
    for split in info.splits.values():
        for shard in split.shards:
            for data in iter_records(str(output / shard), info.compression):
                record = parse_example(data, info.encoding)
                records[record.video_id] = record
    return records


def _errors(output: Path) -> dict[str, dict]:
    lines = (output / ERRORS_FILE).read_text().splitlines()
    return {entry["video_id"]: entry for entry in map(json.loads, lines)}


def test_every_kind_of_hostile_media_is_decoded_or_recorded(tmp_path):
    zoo = _media_zoo(tmp_path)
    source = tmp_path / "zoo.zip"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_STORED) as zf:
        for name, (data, _) in zoo.items():
            zf.writestr(name, data)
    output = tmp_path / "out"
    result = main(args=["shard", str(source), str(output), "--splits", "train=1.0", "--encoding", "png",
                        "--n-frames", "4", "--frame-step", "3", "--size", "24x32", "--seed", "1", *BEAM],
                  standalone_mode=False)
    assert result is None
    stored, errors = _stored(output), _errors(output)
    assert set(stored) | set(errors) == set(zoo) and not set(stored) & set(errors)  # counts add up
    for name, (_, outcome) in zoo.items():
        if outcome == "written":
            assert name in stored, (name, errors.get(name))
        else:
            assert errors[name]["stage"] == outcome and errors[name]["reason"], name
    assert load_info(str(output)).num_failed == len(errors) == 2

    short, single = stored["UCF101/v_Zoo_g02_c03.avi"], stored["UCF101/v_Zoo_g03_c01.avi"]
    assert short.frame_indices.tolist() == [[0, 3, -1, -1]]
    assert single.frame_indices.tolist() == [[0, -1, -1, -1]]
    assert not single.frames[0, 1:].any() and single.frames[0, 0].any()  # padding is zeros, frame 0 is not
    # whatever the header claims (400 or 3), the start is drawn from the 40 frames that decode
    for name in ("UCF101/v_Zoo_g02_c01.avi", "UCF101/v_Zoo_g02_c02.avi"):
        assert np.array_equal(stored[name].frame_indices, clip_indices(name, 40, SPEC))
    gray = stored["UCF101/v_Zoo_g03_c02.avi"].frames
    assert np.array_equal(gray[..., 0], gray[..., 2])
    assert stored["UCF101/v_Zoo_g03_c03.avi"].frames.shape == (1, 4, 24, 32, 3)


@pytest.fixture
def served_zip(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    make_ucf_zip(root / "s.zip", classes=("MoveRight", "MoveLeft"), groups=2, clips_per_group=2,
                 spec=VideoSpec(total_frames=20, width=48, height=32))
    with RangeServer(root) as server:
        yield server, server.url("s.zip")


def _plan(url: str, options: SourceOptions):
    with open_source(url, options) as source:
        catalog = build_catalog(source.list_members())
    return plan_from_options(catalog, None, None, "train=1.0", "group", 0)


def _shard(url: str, output: Path, options: SourceOptions, plan) -> None:
    settings = EncodeSettings(SPEC, "jpeg", 90)
    run_job(ShardRequest(url, str(output), plan, settings, "none", 1, options), BEAM)


def test_transient_network_faults_lose_nothing(served_zip, tmp_path):
    server, url = served_zip
    options = SourceOptions(timeout=5, retries=4, backoff=0.01)
    plan = _plan(url, options)
    _shard(url, tmp_path / "clean", options, plan)
    # 503s, dropped connections and lying short bodies hit the workers' first requests
    server.set_faults(Faults(fail_first=3, drop_first=2, truncate_first=2))
    _shard(url, tmp_path / "faulty", options, plan)
    assert sum(record.status == 503 for record in server.log) == 3  # the faults did happen
    assert (tmp_path / "faulty" / ERRORS_FILE).read_text() == ""
    clean, faulty = _stored(tmp_path / "clean"), _stored(tmp_path / "faulty")
    assert len(faulty) == len(plan.videos)
    assert all(np.array_equal(clean[k].frames, faulty[k].frames) for k in clean)


def test_a_server_that_stays_down_fails_videos_not_the_job(served_zip, tmp_path):
    server, url = served_zip
    options = SourceOptions(timeout=2, retries=1, backoff=0.01)
    plan = _plan(url, options)
    server.set_faults(Faults(fail_first=10**6, fail_status=503))
    _shard(url, tmp_path / "down", options, plan)
    errors = _errors(tmp_path / "down")
    assert set(errors) == {video.video_id for video in plan.videos}
    assert all(e["stage"] == "fetch" and "503" in e["reason"] for e in errors.values()), errors
    info = load_info(str(tmp_path / "down"))
    assert info.num_failed == len(plan.videos) and info.splits["train"].num_examples == 0
