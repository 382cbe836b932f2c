"""``vidshard export-tfds``: TensorFlow Datasets loads a real vidshard output in place.

The output comes from the real ``vidshard shard`` (FnApiRunner) over the ``ucf_zip`` fixture.
TensorFlow (which TensorFlow Datasets starts when it reads) runs only in one subprocess: it
exports through the CLI and writes what ``tfds.builder_from_directory(...).as_dataset`` yields to
``.npz`` files; this process compares that with vidshard's own TF-free parser of the same records.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from vidshard.cli import main
from vidshard.format.info import INFO_FILE, load_info
from vidshard.format.schema import parse_example
from vidshard.format.file_adapters import iter_shard

pytest.importorskip("tensorflow_datasets", reason="export-tfds needs the tfds extra: pip install 'vidshard[tfds]'")

SHARD_OPTIONS = ["--split-by", "order", "--splits", "train=2,val=1,test=1", "--n-frames", "4", "--frame-step", "4",
                 "--size", "24x32", "--clips-per-video", "2", "--shards", "2", "--runner=FnApiRunner"]

#: In one process (TensorFlow starts once): ``vidshard export-tfds`` through the CLI for every
#: (output, --to) pair, then every split read with TFDS; saves what it yields and what
#: ``builder.info`` says, per exported folder.
EXPORT_AND_READ = """
import json, sys
import numpy as np
import tensorflow_datasets as tfds
from vidshard.cli import main
from vidshard.format.info import load_info
from vidshard.tfds_export import exact_decoders
for out, folder, npz, meta in json.loads(sys.argv[1]):
    main(["export-tfds", out] + (["--to", folder] if folder else []), standalone_mode=False)
    builder = tfds.builder_from_directory(folder or out + "/tfds")
    info = builder.info
    arrays = {}
    for split in info.splits:
        if info.file_format.value == "array_record":  # TFDS reads ArrayRecord by index, decoding with NumPy
            source = builder.as_data_source(split=split)
            examples = [source[key] for key in range(len(source))]
            for example in examples:  # a Video comes as a list of frames here
                example["frames"] = np.stack(example["frames"])
            arrays[f"{split}/exact_frames"] = np.stack([example["frames"] for example in examples])
        else:
            examples = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
            exact = builder.as_dataset(split=split, shuffle_files=False, decoders=exact_decoders(load_info(out).encoding))
            arrays[f"{split}/exact_frames"] = np.stack([example["frames"] for example in tfds.as_numpy(exact)])
        timing = ("source_fps", "source_frames") if "source_fps" in info.features else ()
        for key in ("frames", "label", "video_id", "label_name", "frame_indices", "num_clips", *timing):
            arrays[f"{split}/{key}"] = np.stack([example[key] for example in examples])
    if info.file_format.value == "tfrecord":
        frames, labels = next(iter(tfds.as_numpy(builder.as_dataset(split="train", as_supervised=True, shuffle_files=False))))
        arrays["supervised/frames"], arrays["supervised/label"] = frames, labels
    np.savez(npz, **arrays)
    json.dump({"splits": {name: {"num_examples": s.num_examples, "shard_lengths": list(s.shard_lengths)}
                          for name, s in info.splits.items()},
               "class_names": info.features["label"].names,
               "frames_feature": type(info.features["frames"]).__name__,
               "supervised_keys": list(info.supervised_keys)}, open(meta, "w"))
"""
ENCODINGS = ("jpeg", "png", "raw")


def shard(zip_path, out, *extra: str) -> str:
    result = CliRunner().invoke(main, ["shard", str(zip_path), str(out), *SHARD_OPTIONS, *extra])
    assert result.exit_code == 0, result.output
    return str(out)


@pytest.fixture(scope="module")
def exported(ucf_zip, tmp_path_factory) -> dict:
    """Per case (each encoding into DATA_DIR/tfds; jpeg also ``--to`` another folder): what TFDS read."""
    root = tmp_path_factory.mktemp("tfds")
    cases = {encoding: (shard(ucf_zip[0], root / encoding, "--encoding", encoding), None) for encoding in ENCODINGS}
    cases["elsewhere"] = (cases["jpeg"][0], str(root / "meta" / "ucf"))
    # Version 4: segment sampling (timing in every record) and 3 evaluation clips outside train.
    at = SHARD_OPTIONS.index("--frame-step")
    segments = SHARD_OPTIONS[:at] + SHARD_OPTIONS[at + 2:]
    result = CliRunner().invoke(main, ["shard", str(ucf_zip[0]), str(root / "segments"), *segments,
                                       "--sampling", "segments", "--eval-clips", "3"])
    assert result.exit_code == 0, result.output
    cases["segments"] = (str(root / "segments"), None)
    if importlib.util.find_spec("array_record") is not None:
        cases["array_record"] = (shard(ucf_zip[0], root / "ar", "--format", "array_record"), None)
    sizes = {out: shard_sizes(out) for out, _ in cases.values()}
    jobs = [(out, folder, str(root / f"{case}.npz"), str(root / f"{case}.json")) for case, (out, folder) in cases.items()]
    proc = subprocess.run([sys.executable, "-c", EXPORT_AND_READ, json.dumps(jobs)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {}
    for case, (out, folder, npz, meta) in zip(cases, jobs):
        with np.load(npz) as arrays:
            results[case] = {"out": out, "folder": folder or os.path.join(out, "tfds"), "arrays": dict(arrays),
                             "meta": json.loads(open(meta).read()), "sizes": sizes[out]}
    return results


def shard_sizes(out: str) -> dict[str, int]:
    return {name: os.path.getsize(os.path.join(out, name)) for name in os.listdir(out) if "-of-" in name}


def vidshard_records(out: str, split: str) -> list:
    """Every record of ``split`` in shard order, parsed by vidshard's own TF-free parser."""
    info = load_info(out)
    return [parse_example(serialized, info.encoding) for name in info.splits[split].shards
            for serialized in iter_shard(os.path.join(out, name), info)]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_tfds_reads_the_shards_in_place_with_the_same_frames(exported, encoding):
    case = exported[encoding]
    out, arrays, meta = case["out"], case["arrays"], case["meta"]
    info = load_info(out)
    shards = sorted(name for split in info.splits.values() for name in split.shards)
    assert sorted(os.listdir(case["folder"])) == sorted(["dataset_info.json", "features.json", "label.labels.txt",
                                                         *shards])
    assert all(os.path.islink(os.path.join(case["folder"], name)) for name in shards)  # links, no copies
    assert info.encoding == encoding
    assert meta["class_names"] == info.class_names
    assert meta["frames_feature"] == ("Tensor" if encoding == "raw" else "Video")
    assert meta["supervised_keys"] == ["frames", "label"]
    assert meta["splits"] == {split: {"num_examples": s.num_examples, "shard_lengths": s.shard_lengths}
                              for split, s in info.splits.items()}
    for split in info.splits:
        expected = vidshard_records(out, split)
        assert len(expected) == info.splits[split].num_examples > 0
        # clips concatenated: [clips*T, H, W, 3]; with exact_decoders exactly what vidshard's parser decodes
        frames = np.stack([r.frames.reshape(-1, *r.frames.shape[2:]) for r in expected])
        np.testing.assert_array_equal(arrays[f"{split}/exact_frames"], frames)
        assert arrays[f"{split}/frames"].shape == frames.shape == (len(expected), 2 * 4, 24, 32, 3)
        if encoding == "jpeg":  # TF's default JPEG IDCT: off by a few levels, never another picture
            difference = np.abs(arrays[f"{split}/frames"].astype(int) - frames)
            assert difference.mean() < 2 and difference.max() < 32, (difference.mean(), difference.max())
        else:
            np.testing.assert_array_equal(arrays[f"{split}/frames"], frames)
        assert arrays[f"{split}/label"].tolist() == [r.label for r in expected]
        assert [v.decode() for v in arrays[f"{split}/video_id"]] == [r.video_id for r in expected]
        assert [v.decode() for v in arrays[f"{split}/label_name"]] == [r.label_name for r in expected]
        np.testing.assert_array_equal(arrays[f"{split}/frame_indices"],
                                      np.stack([r.frame_indices.reshape(-1) for r in expected]))
        assert arrays[f"{split}/num_clips"].tolist() == [2] * len(expected)
    np.testing.assert_array_equal(arrays["supervised/frames"], arrays["train/frames"][0])
    assert int(arrays["supervised/label"]) == vidshard_records(out, "train")[0].label
    assert shard_sizes(out) == case["sizes"]  # vidshard's shards are untouched


def test_tfds_reads_version_4_outputs_with_their_timing_and_evaluation_clips(exported):
    case = exported["segments"]
    info = load_info(case["out"])
    assert info.format_version == 4 and info.clip.sampling == "segments"
    for split in info.splits:
        expected = vidshard_records(case["out"], split)
        clips = 2 if split == "train" else 3
        frames = np.stack([r.frames.reshape(-1, *r.frames.shape[2:]) for r in expected])
        np.testing.assert_array_equal(case["arrays"][f"{split}/exact_frames"], frames)
        assert frames.shape[1] == clips * 4 and case["arrays"][f"{split}/num_clips"].tolist() == [clips] * len(expected)
        assert case["arrays"][f"{split}/source_frames"].tolist() == [r.source_frames for r in expected]
        np.testing.assert_allclose(case["arrays"][f"{split}/source_fps"], [r.source_fps for r in expected])


def test_export_to_another_folder_points_at_the_shards(exported):
    case = exported["elsewhere"]
    splits = json.loads(open(os.path.join(case["folder"], "dataset_info.json")).read())["splits"]
    assert {s["filepathTemplate"] for s in splits} == {"{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"}
    shards = load_info(exported["jpeg"]["out"]).splits
    names = sorted(name for split in shards.values() for name in split.shards)
    assert sorted(name for name in os.listdir(case["folder"]) if name.endswith(".tfrecord")) == names
    for name in names:  # relative links to the shards: nothing copied, the two folders move together
        link = os.path.join(case["folder"], name)
        assert os.path.islink(link) and os.readlink(link) == os.path.join("..", "..", "jpeg", name)
        assert os.path.samefile(link, os.path.join(exported["jpeg"]["out"], name))
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(case["arrays"][f"{split}/frames"], exported["jpeg"]["arrays"][f"{split}/frames"])


def test_tfds_reads_array_record_outputs_by_index(exported):
    if "array_record" not in exported:
        pytest.skip("ArrayRecord outputs need the grain extra: pip install 'vidshard[grain]'")
    case = exported["array_record"]
    info = load_info(case["out"])
    templates = {s["filepathTemplate"] for s in json.loads(open(os.path.join(case["folder"], "dataset_info.json")).read())["splits"]}
    assert templates == {"{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"} and info.file_format == "array_record"
    assert case["meta"]["splits"] == {split: {"num_examples": s.num_examples, "shard_lengths": s.shard_lengths}
                                      for split, s in info.splits.items()}
    for split in info.splits:
        expected = vidshard_records(case["out"], split)
        frames = np.stack([r.frames.reshape(-1, *r.frames.shape[2:]) for r in expected])
        assert case["arrays"][f"{split}/frames"].shape == frames.shape  # TFDS decodes with OpenCV or PIL here
        assert np.abs(case["arrays"][f"{split}/frames"].astype(int) - frames).mean() < 2
        assert [v.decode() for v in case["arrays"][f"{split}/video_id"]] == [r.video_id for r in expected]
        assert case["arrays"][f"{split}/label"].tolist() == [r.label for r in expected]


def test_export_refusals_are_one_line(exported, tmp_path):
    out = exported["jpeg"]["out"]
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "other.txt").write_text("x")
    refused = CliRunner().invoke(main, ["export-tfds", out, "--to", str(folder)])
    assert refused.exit_code == 1
    assert refused.output.strip() == f"Error: {folder} holds other files than an earlier TFDS export; choose another --to"

    copy = shutil.copytree(out, tmp_path / "gz", ignore=shutil.ignore_patterns("tfds"))
    info = json.loads((copy / INFO_FILE).read_text())
    info["compression"] = "gzip"
    (copy / INFO_FILE).write_text(json.dumps(info))
    refused = CliRunner().invoke(main, ["export-tfds", str(copy)])
    assert refused.exit_code == 1
    assert refused.output.strip() == (
        f"Error: {copy} has gzip-compressed shards, which TFDS cannot read: shard again with --compression none")
    assert not (copy / "tfds").exists()


def test_the_whole_video_benchmark_builds_tfds_own_dataset_of_every_frame(tmp_path):
    """bench.whole --tfds's baseline: TFDS's builder stores every frame of every video, nothing else."""
    from vidshard.bench.whole import tfds_build, write_videos

    lengths = write_videos(tmp_path / "videos", 3, classes=2)
    result = tfds_build(tmp_path / "videos", tmp_path / "tfds")  # a subprocess: TensorFlow stays out of pytest
    assert result["videos"] == 3 and result["real_frames"] == sum(lengths) and result["padding_frames"] == 0
    assert result["bytes"] > 0 and result["seconds"] > 0
