"""The Python API: ``vidshard.shard`` runs the real job (Beam's DirectRunner on a real zip), ``vidshard.load``
returns every backend's reader over the same selected records, and ``import vidshard`` stays light.

PyTorch runs in a subprocess (a TensorFlow process must not import PyPI's CUDA torch); Grain and
PyTorch tests skip without their extras, naming them.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import vidshard
from vidshard.errors import CatalogError, VidshardError
from vidshard.format.info import INFO_FILE, load_info
from vidshard.testing.shards import write_tagged_shards

SIZES = [3, 1, 4, 2, 3]  # 13 tagged videos: the first pixel of each frame names the video


def test_import_vidshard_imports_neither_beam_nor_tensorflow():
    code = ("import sys, vidshard; vidshard.shard; vidshard.load; "
            "print(sorted(m for m in ('apache_beam', 'tensorflow', 'torch', 'grain') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_shard_runs_the_job_and_load_reads_a_slice(ucf_zip, tmp_path):
    zip_path, names = ucf_zip
    out = tmp_path / "out"
    result = vidshard.shard(str(zip_path), out, splits="train=4,val=2", n_frames=4, frame_step=2, size=(24, 32),
                            shards=2, seed=3, progress=False)
    assert result.written == {"train": 12, "val": 6} and result.failed == {"train": 0, "val": 0}
    info = load_info(str(out))
    assert info.to_json() == result.info.to_json() and info.clip.seed == 3 and info.seed == 3
    assert info.clip_shape == (4, 24, 32, 3)
    reader = vidshard.load(out, "train[:50%]+val[-1:]", batch_size=None, shuffle=False)
    examples = list(reader)
    assert len(examples) == reader.num_examples == 7
    assert all(frames.shape == (4, 24, 32, 3) and label.dtype == np.int64 for frames, label in examples)
    # The same job again refuses the finished output, before any work, and leaves it as it was.
    before = (out / INFO_FILE).read_text()
    with pytest.raises(VidshardError, match="already holds a finished vidshard output; pass `overwrite`"):
        vidshard.shard(str(zip_path), out, splits="train=4,val=2", progress=False)
    assert (out / INFO_FILE).read_text() == before


def test_bad_arguments_fail_before_anything_is_written(ucf_zip, tmp_path):
    zip_path, _ = ucf_zip
    for kwargs, error, message in [
        ({"splits": "train=0"}, CatalogError, "`splits` train=0: must be positive"),
        ({"num_classes": 2, "classes": "A"}, CatalogError, "either `num_classes` or `classes`"),
        ({"fold": 1}, CatalogError, "`fold` chooses a fold of `split_lists`"),
        ({"encoding": "gif"}, VidshardError, "`encoding` 'gif'"),
        ({"n_frames": 0}, ValueError, "`n_frames` must be a positive integer"),
        ({"beam_args": ["--runer", "DirectRunner"]}, VidshardError, "No such option: --runer"),
    ]:
        with pytest.raises(error, match=message):
            vidshard.shard(str(zip_path), tmp_path / "out", progress=False, **kwargs)
        assert not (tmp_path / "out").exists()


def _tf_videos(dataset) -> list[int]:
    return [int(video_id.decode().rsplit("_c", 1)[1][:2]) for _, _, ids in dataset for video_id in ids.numpy()]


def test_every_backend_reads_the_selected_records(tmp_path):
    write_tagged_shards(tmp_path, SIZES)
    spec, expected = "train[2:5]+train[-20%:]", [2, 3, 4, 10, 11, 12]
    numpy_batches = list(vidshard.load(tmp_path, spec, batch_size=4, shuffle=False))
    assert [int(v) for frames, _ in numpy_batches for v in frames[:, 0, 0, 0, 0]] == expected
    assert all(labels.dtype == np.int64 for _, labels in numpy_batches)

    dataset = vidshard.load(tmp_path, spec, "tf", batch_size=4, shuffle=False, with_ids=True)
    assert _tf_videos(dataset) == expected
    assert dataset.element_spec[1].dtype.name == "int64"  # as every reader yields
    shuffled = vidshard.load(tmp_path, spec, "tf", batch_size=4, seed=1, with_ids=True)
    assert sorted(_tf_videos(shuffled)) == expected  # a shuffle reorders the selection, never changes it
    with pytest.raises(VidshardError, match="`backend` 'jax'"):
        vidshard.load(tmp_path, spec, "jax")


def test_numpy_ranks_get_equal_shares_of_a_selection(tmp_path):
    write_tagged_shards(tmp_path, SIZES)
    shares = [[int(frames[0, 0, 0, 0]) for frames, _ in vidshard.load(tmp_path, "train[1:]", batch_size=None,
                                                                    num_replicas=5, rank=rank, shuffle=False)]
              for rank in range(5)]
    assert [len(share) for share in shares] == [3] * 5  # 12 records: 3 each, the first 3 padded again
    assert sorted(v for share in shares for v in share) == sorted([*range(1, 13), 1, 2, 3])


def test_grain_reads_a_slice_of_an_array_record_output(tmp_path):
    pytest.importorskip("grain", reason="Grain is not installed (an optional extra): pip install -e '.[grain]'")
    write_tagged_shards(tmp_path, SIZES, file_format="array_record")
    dataset = vidshard.load(tmp_path, "train[-20%:]", "grain", shuffle=False)
    elements = list(dataset)
    assert [int(frames[0, 0, 0, 0]) for frames, _ in elements] == [10, 11, 12]
    assert [int(label) for _, label in elements] == [1, 2, 0] and elements[0][1].dtype == np.int64


def test_torch_reads_a_slice_in_its_layout(tmp_path):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed (an optional extra): pip install -e '.[torch]'")
    write_tagged_shards(tmp_path, SIZES)
    code = (
        "import json, sys, vidshard\n"
        "data = vidshard.load(sys.argv[1], 'train[:4]+train[-1:]', 'torch', shuffle=False, layout='CTHW')\n"
        "out = [(round(float(f[0, 0, 0, 0]) * 255), str(f.dtype), list(f.shape), str(l.dtype)) for f, l in data]\n"
        "print(json.dumps([len(data), out, 'tensorflow' in sys.modules]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert run.returncode == 0, run.stderr
    length, examples, imported_tf = json.loads(run.stdout.strip().splitlines()[-1])
    assert length == 5 and not imported_tf
    assert examples == [[v, "torch.float32", [3, 3, 48, 64], "torch.int64"] for v in [0, 1, 2, 3, 12]]
