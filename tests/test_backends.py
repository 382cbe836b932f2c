"""Training on JAX and PyTorch from the TF-free reader, and the training-step benchmark.

Keras picks its backend once per process, and this test process runs Keras on TensorFlow, so
every JAX or PyTorch run happens in a subprocess, which also reports whether TensorFlow (or
Beam) was imported there.  The results are checked on TensorFlow in another subprocess, because
a model from another backend must not bring that backend into a TensorFlow process (PyPI's CUDA
PyTorch crashes it), and a crash there must fail a test, not kill pytest: the model.keras that
JAX or PyTorch wrote loads, has the TensorFlow model's parameter count and gives the logits
the training backend gave, and ``vidshard evaluate`` scores the run.

JAX and PyTorch are optional extras (``pip install -e '.[jax]'``, ``'.[torch]'``); without them
these tests skip and say so.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from vidshard.testing.shards import corrupt_shard, make_shards, read_records
from vidshard.bench.train_step import BenchTrainConfig, endless_batches, run
from vidshard.cli import main
from vidshard.errors import ShardFormatError, VidshardError
from vidshard.models.backend import run_backend, use_backend
from vidshard.models.resnet21d import build_model
from vidshard.models.inputs import ReaderEpoch, ShardSequence
from vidshard.models.train import TrainConfig, train
from vidshard.readers.numpy_reader import ShardReader

CLASSES = 3
SPLITS = {"train": 6, "val": 2, "test": 3}  # per class; a colour cast per class makes them separable
TRAIN = ["--batch-size", "3", "--learning-rate", "3e-4", "--seed", "3"]

#: Runs ``vidshard`` commands (argv[1]: JSON list of argument lists) in this fresh process, then
#: predicts the test split with the run's model.keras (argv[2], optional) on the same backend.
_CLI_SCRIPT = """
import json, sys
from click.testing import CliRunner
from vidshard.cli import main
results = []
for args in json.loads(sys.argv[1]):
    result = CliRunner().invoke(main, args)
    error = result.exception if not isinstance(result.exception, SystemExit) else None
    results.append({"exit_code": result.exit_code, "output": result.output, "error": repr(error) if error else None})
logits = None
if len(sys.argv) > 3:
    import keras
    from vidshard.readers.numpy_reader import ShardReader
    model = keras.models.load_model(sys.argv[2])
    frames, _ = next(iter(ShardReader(sys.argv[3], "test", batch_size=64, shuffle=False, clips=0)))
    logits = model.predict_on_batch(frames).tolist()
import keras
print(json.dumps({"results": results, "logits": logits, "backend": keras.backend.backend(),
                  "tensorflow": "tensorflow" in sys.modules, "beam": "apache_beam" in sys.modules}))
"""


#: In a process that has TensorFlow: ``vidshard evaluate`` the run (argv[1]) and load its model.keras
#: and checkpoint the documented way, predicting the test split of argv[2]; reports which other
#: backends got imported beyond what ``import tensorflow`` imports itself (it imports JAX if installed).
_ON_TENSORFLOW = """
import json, os, sys
import tensorflow
by_tensorflow = {name for name in ("torch", "jax") if name in sys.modules}
from click.testing import CliRunner
from vidshard.cli import main
evaluated = CliRunner().invoke(main, ["evaluate", sys.argv[1]])
import keras
import vidshard.models.resnet21d
from vidshard.readers.numpy_reader import ShardReader
model = keras.models.load_model(os.path.join(sys.argv[1], "model.keras"))
last = keras.models.load_model(os.path.join(sys.argv[1], "checkpoints", "last.keras"))
frames, _ = next(iter(ShardReader(sys.argv[2], "test", batch_size=64, shuffle=False, clips=0)))
print(json.dumps({"evaluate": [evaluated.exit_code, evaluated.output], "params": model.count_params(),
                  "logits": model.predict_on_batch(frames).tolist(), "iterations": int(last.optimizer.iterations),
                  "backend": keras.backend.backend(),
                  "foreign": sorted(n for n in ("torch", "jax") if n in sys.modules and n not in by_tensorflow)}))
"""


def _skip_without(backend: str) -> None:
    pytest.importorskip(backend, reason=f"{backend} is not installed (an optional extra): "
                                        f"pip install -e '.[{backend}]'")


def _in_subprocess(commands: list[list], predict: tuple | None = None, timeout: int = 300) -> dict:
    """Run ``commands`` with a fresh interpreter; KERAS_BACKEND says tensorflow, so --backend must win."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [sys.executable, "-c", _CLI_SCRIPT, json.dumps([[str(a) for a in c] for c in commands])]
    argv += [str(p) for p in predict or ()]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("backends") / "data"
    make_shards(path, splits=SPLITS, color_cue=True)
    return path


#: PyTorch trains this tiny model fastest on CPU; JAX compiles longer (about 40 s here), so it is slow.
BACKEND_PARAMS = ["torch", pytest.param("jax", marks=pytest.mark.slow)]
EPOCHS = 5


@pytest.fixture(scope="module", params=BACKEND_PARAMS)
def trained(request, data, tmp_path_factory):
    """(backend, run dir, subprocess report) of a run of EPOCHS epochs resumed to EPOCHS + 1 (its backend
    taken from config.json), plus a run on a copy of the data with a corrupt shard."""
    backend = request.param
    _skip_without(backend)
    root = tmp_path_factory.mktemp(backend)
    shutil.copytree(data, root / "bad")
    corrupt_shard(root / "bad" / "train-00000-of-00002.tfrecord")
    report = _in_subprocess([
        ["train", data, root / "run", "--backend", backend, "--epochs", EPOCHS, *TRAIN],
        ["train", data, root / "run", "--resume", "--epochs", EPOCHS + 1],
        ["train", root / "bad", root / "bad-run", "--backend", backend, "--epochs", "1"],
    ], predict=(root / "run" / "model.keras", data))
    return backend, root / "run", report


@pytest.fixture(scope="module")
def on_tensorflow(trained, data):
    """The subprocess on TensorFlow (:data:`_ON_TENSORFLOW`) for the trained run: (its exit status, stderr, report)."""
    _, run, _ = trained
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", _ON_TENSORFLOW, str(run), str(data)], env=env,
                         capture_output=True, text=True, timeout=300)
    report = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None
    return out.returncode, out.stderr[-3000:], report


def test_training_learns_resumes_and_never_imports_tensorflow(trained, on_tensorflow, data):
    backend, run, report = trained
    first, resumed, corrupt = report["results"]
    assert first["exit_code"] == 0, first["output"] + str(first["error"])
    assert f"trained {EPOCHS} epochs" in first["output"]
    assert resumed["exit_code"] == 0, resumed["output"] + str(resumed["error"])
    assert f"trained {EPOCHS + 1} epochs" in resumed["output"]
    assert report["backend"] == backend
    assert report["tensorflow"] is False and report["beam"] is False
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == EPOCHS + 1
    assert min(history["loss"][1:]) < 0.5 * history["loss"][0]
    with open(run / "history.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == list(range(EPOCHS + 1))
    assert (run / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["backend"] == backend and config["train"]["cache"] == "none"
    assert config["resumed_at_epoch"] == EPOCHS
    assert config["versions"]["backend"] == backend and backend in config["versions"]
    assert "tensorflow" not in config["versions"]
    # The resumed epoch continued the optimizer: EPOCHS + 1 epochs of 6 steps.
    code, stderr, loaded = on_tensorflow
    assert code == 0, stderr
    assert loaded["iterations"] == (EPOCHS + 1) * 6
    assert corrupt["exit_code"] == 1
    line = corrupt["output"].strip()
    assert line.startswith("Error: reading split 'train': ") and "train-00000-of-00002.tfrecord: record 0" in line
    assert "\n" not in line


def test_model_keras_loads_on_tensorflow_without_the_training_backend(trained, on_tensorflow):
    """Loaded the documented way in a TensorFlow process: same parameters and logits, and PyTorch (or JAX)
    never imported there (on PyTorch, Keras saves its own Adam class, whose module imports torch)."""
    backend, run, report = trained
    code, stderr, loaded = on_tensorflow
    assert code == 0, stderr
    assert loaded["backend"] == "tensorflow" and loaded["foreign"] == []
    config = json.loads((run / "config.json").read_text())
    assert loaded["params"] == build_model(4, 32, 32, CLASSES).count_params() == config["model"]["params"]
    np.testing.assert_allclose(np.array(loaded["logits"]), np.array(report["logits"]), rtol=1e-4, atol=1e-4)


def test_evaluate_scores_the_run_with_the_tensorflow_reader(trained, on_tensorflow, data):
    _, run, _ = trained
    code, stderr, loaded = on_tensorflow
    assert code == 0, stderr
    exit_code, output = loaded["evaluate"]
    assert exit_code == 0, output
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    records = read_records(data, "test")
    predicted = np.array(loaded["logits"]).argmax(axis=1)  # the test split in file order, as read_records
    by_hand = np.zeros((CLASSES, CLASSES), int)
    for record, guess in zip(records, predicted, strict=True):
        by_hand[record.label, guess] += 1
    assert metrics["confusion_matrix"] == by_hand.tolist()
    assert metrics["video_accuracy"] >= 2 / CLASSES  # chance is 1/3


# -- choosing the backend -----------------------------------------------------------------------

def test_the_backend_is_fixed_once_keras_is_imported(data, tmp_path):
    assert keras.backend.backend() == "tensorflow"
    use_backend("tensorflow")  # already so: nothing to do
    with pytest.raises(VidshardError, match="runs on tensorflow, not jax.*start a new process"):
        use_backend("jax")
    result = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "run"), "--backend", "torch"])
    assert result.exit_code == 1 and "Error: Keras is already imported" in result.output
    with pytest.raises(VidshardError, match="this run trains on jax, but Keras runs on tensorflow"):
        train(data, tmp_path / "api-run", TrainConfig(backend="jax", epochs=1))
    with pytest.raises(VidshardError, match="unknown backend"):
        use_backend("mxnet")


def test_backend_options_are_checked(data, tmp_path):
    with pytest.raises(VidshardError, match="cache 'memory' needs the tensorflow backend"):
        TrainConfig(backend="jax", cache="memory")
    with pytest.raises(VidshardError, match="backend must be one of"):
        TrainConfig(backend="mxnet")
    assert TrainConfig(backend="torch").cache is None  # resolved per backend when training starts
    result = CliRunner().invoke(main, ["train", str(data), str(tmp_path), "--resume", "--backend", "jax"])
    assert result.exit_code == 2 and "--backend cannot change when resuming" in result.output
    assert run_backend(tmp_path) == "tensorflow"  # no run there yet
    (tmp_path / "config.json").write_text(json.dumps({"train": {"backend": "torch"}}))
    assert run_backend(tmp_path) == "torch"


_KEPT_OUT = """
import importlib.util, json, sys
from vidshard.models.backend import tensorflow_kept_out
hooks, message = len(sys.meta_path), None
with tensorflow_kept_out():
    try:
        import tensorflow
        imported = True
    except ImportError as exc:
        imported = False
        message = str(exc)
    spec = importlib.util.find_spec("tensorflow")
print(json.dumps({"imported": imported, "message": message, "probe_origin": spec.origin,
                  "hooks_restored": len(sys.meta_path) == hooks, "in_modules": "tensorflow" in sys.modules,
                  "importable_after": importlib.util.find_spec("tensorflow").origin is not None}))
"""


def test_tensorflow_is_kept_out_only_inside_the_block():
    out = subprocess.run([sys.executable, "-c", _KEPT_OUT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["imported"] is False and "kept out" in report["message"]
    assert report["probe_origin"] is None  # a probe (find_spec) sees no file, and does not raise
    assert report["hooks_restored"] and not report["in_modules"] and report["importable_after"]


# -- the PyDataset over the TF-free reader -------------------------------------------------------

def _labels(batches) -> list[list[int]]:
    return [labels.tolist() for _, labels in batches]


def test_shard_sequence_reads_the_epoch_fit_asks_for(data):
    seq = ShardSequence(ShardReader(data, "train", 4, seed=5, num_workers=1))
    ReaderEpoch(seq).on_epoch_begin(3)
    assert seq[0] is not None  # a pass abandoned after one batch (Keras's build peek) ...
    passes = [[seq[i] for i in range(len(seq))] for _ in range(2)]  # ... and two full passes of epoch 3
    expected = list(ShardReader(data, "train", 4, seed=5, num_workers=0, epoch=3))
    for got in passes:
        assert len(got) == len(expected) == 5  # 18 clips in batches of 4
        for (frames, labels), (want_frames, want_labels) in zip(got, expected):
            np.testing.assert_array_equal(frames, want_frames)
            np.testing.assert_array_equal(labels, want_labels)
    other = list(ShardReader(data, "train", 4, seed=5, num_workers=0, epoch=4))
    assert _labels(other) != _labels(expected)  # so the epoch matters
    seq.on_epoch_end()
    with pytest.raises(IndexError, match="read in order"):
        seq[2]


def test_shard_sequence_names_split_and_file_of_a_corrupt_shard(data, tmp_path):
    shutil.copytree(data, tmp_path / "data")
    corrupt_shard(tmp_path / "data" / "val-00001-of-00002.tfrecord")
    seq = ShardSequence(ShardReader(tmp_path / "data", "val", 2, shuffle=False, num_workers=1))
    with pytest.raises(ShardFormatError, match=r"reading split 'val': .*val-00001-of-00002\.tfrecord: record 0"):
        for i in range(len(seq)):
            seq[i]


# -- the training-step benchmark -----------------------------------------------------------------

_BENCH = """
import json, runpy, sys
sys.argv = ["train_step", *json.loads(sys.argv[1])]
try:
    runpy.run_module("vidshard.bench.train_step", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "tensorflow": "tensorflow" in sys.modules, "beam": "apache_beam" in sys.modules}))
"""


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_bench_train_runs_as_a_module_without_tensorflow(backend, data, tmp_path):
    _skip_without(backend)
    args = [str(data), "--backend", backend, "--batch-sizes", "2,4", "--dtypes", "float32", "--steps", "2",
            "--warmup", "1", "--rounds", "2", "--workers", "1", "--json", str(tmp_path / "bench.json")]
    out = subprocess.run([sys.executable, "-c", _BENCH, json.dumps(args)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report == {"code": 0, "tensorflow": False, "beam": False}
    table = [line for line in lines if line.startswith(f"| {backend} |")]
    assert [line.split("|")[2:4] for line in table] == [[" 2 ", " float32 "], [" 4 ", " float32 "]]
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["config"]["backend"] == backend and backend in result["versions"]
    assert result["data"]["clip_shape"] == [4, 32, 32, 3] and result["data"]["clips"] == 18
    assert result["machine"]["cpu"] and result["machine"]["device"].startswith("cpu")
    for row, batch in zip(result["rows"], (2, 4)):
        assert (row["batch_size"], row["dtype"], row["timed_steps"]) == (batch, "float32", 4)
        assert len(row["synthetic_rounds"]) == len(row["shards_rounds"]) == 2
        assert row["ratio"] == pytest.approx(row["shards"] / row["synthetic"])
        assert row["target_met"] == (row["ratio"] >= result["target_ratio"])
        for key in ("synthetic", "shards", "reader_alone"):
            assert row[key] > 0


def test_endless_batches_runs_epoch_after_epoch_and_stops_its_threads(data):
    reader = ShardReader(data, "val", 4, seed=1, num_workers=2, drop_remainder=True)  # 6 clips: 1 batch a pass
    expected = [_labels(ShardReader(data, "val", 4, seed=1, num_workers=0, drop_remainder=True, epoch=e))[0]
                for e in range(3)]
    before = threading.active_count()
    batches = endless_batches(reader)
    assert [next(batches)[1].tolist() for _ in range(3)] == expected
    batches.close()
    assert threading.active_count() == before


def test_bench_train_refuses_a_split_smaller_than_a_batch_and_a_switched_backend(data):
    with pytest.raises(VidshardError, match="holds 6 clips, fewer than one batch of 8"):
        run(BenchTrainConfig(str(data), backend="tensorflow", split="val", batch_sizes=(8,), dtypes=("float32",)))
    result = CliRunner().invoke(main, ["bench-train", str(data), "--backend", "jax"])
    assert result.exit_code == 1 and "Error: Keras is already imported" in result.output
    result = CliRunner().invoke(main, ["bench-train", "--help"])
    assert result.exit_code == 0 and "--batch-sizes" in result.output
