"""`vidshard train` and `vidshard evaluate` on small synthetic shards, through the real CLI and TensorFlow.

One short training run (module fixture, ~20 s on 2 cores: most of it is TensorFlow tracing the
training step) is shared by the default tests; longer runs are marked slow.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from vidshard.testing.shards import corrupt_shard, make_shards, read_records
from vidshard.cli import main
from vidshard.errors import VidshardError
from vidshard.format.info import load_info
from vidshard.format.schema import encode_example
from vidshard.models.evaluate import confusion_matrix, per_class_metrics
from vidshard.models.plots import history_figure
from vidshard.models.resnet21d import build_model
from vidshard.models.callbacks import ResumableEarlyStopping
from vidshard.models.train import TrainConfig, train
from vidshard.readers.tf_data import make_dataset

CLASSES = 3
EPOCHS = 12
#: A colour cast per class makes the set separable in a few epochs (see vidshard.testing.shards.clip_record).
SPLITS = {"train": 6, "val": 2, "test": 3}
TRAIN_ARGS = ["--epochs", str(EPOCHS), "--batch-size", "3", "--learning-rate", "3e-4", "--seed", "3"]


def _invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data dir, run dir, CLI output) of one `vidshard train` run."""
    root = tmp_path_factory.mktemp("trained")
    make_shards(root / "data", splits=SPLITS, color_cue=True)
    result = _invoke("train", root / "data", root / "run", *TRAIN_ARGS)
    assert result.exit_code == 0, result.output
    return root / "data", root / "run", result.output


def _history(run) -> dict[str, list[float]]:
    return json.loads((run / "history.json").read_text())


def test_training_lowers_the_loss_and_beats_chance(trained):
    _, run, output = trained
    history = _history(run)
    assert len(history["loss"]) == EPOCHS
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert max(history["val_accuracy"]) >= 2 / CLASSES  # chance is 1/3
    assert f"trained {EPOCHS} epochs" in output and "vidshard evaluate" in output


def test_run_dir_holds_the_best_model_history_plot_and_config(trained):
    data, run, _ = trained
    history = _history(run)
    with open(run / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))
    np.testing.assert_allclose([float(r["val_loss"]) for r in rows], history["val_loss"], rtol=1e-6)
    assert (run / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "checkpoints" / "last.keras").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["epochs"] == EPOCHS and config["train"]["learning_rate"] == 3e-4
    assert config["dataset"]["class_names"] == ["MoveDown", "MoveDownRight", "MoveRight"]
    assert config["model"]["params"] == build_model(4, 32, 32, CLASSES).count_params()
    # model.keras is the epoch with the lowest val_loss, not the last one.
    model = keras.models.load_model(run / "model.keras")
    val = make_dataset(data, "val", 3, shuffle=False, clips="all")
    assert model.evaluate(val, verbose=0, return_dict=True)["loss"] == pytest.approx(min(history["val_loss"]),
                                                                                       rel=1e-4)


def test_evaluate_writes_a_confusion_matrix_equal_to_a_hand_count(trained):
    data, run, _ = trained
    result = _invoke("evaluate", run)
    assert result.exit_code == 0, result.output
    assert "test: 9 clips of 9 videos" in result.output and "macro avg" in result.output
    assert "clip accuracy" in result.output and "video accuracy" in result.output and "(top-3 " in result.output
    out = run / "eval" / "test"
    metrics = json.loads((out / "metrics.json").read_text())
    cm = np.array(metrics["confusion_matrix"])
    assert cm.sum() == 9 == metrics["num_clips"]
    # Independent path: OpenCV-decoded frames, Keras predict, counting by hand.
    model = keras.models.load_model(run / "model.keras")
    records = read_records(data, "test")
    predicted = model.predict(np.stack([r.frames[0] for r in records]), verbose=0).argmax(axis=1)
    by_hand = [[0] * CLASSES for _ in range(CLASSES)]
    for record, guess in zip(records, predicted):
        by_hand[record.label][guess] += 1
    assert cm.tolist() == by_hand
    # One clip per video: video and clip scores are the same numbers.
    assert metrics["video_accuracy"] == pytest.approx(np.trace(cm) / 9) == metrics["clip_accuracy"]
    assert metrics["video_accuracy"] > 1 / CLASSES
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9 and {r["num_clips"] for r in rows} == {"1"}
    assert sorted(r["video_id"] for r in rows) == sorted(r.video_id for r in records)
    with open(out / "per_class.csv", newline="") as fh:
        rows = {r["class"]: r for r in csv.DictReader(fh)}
    for i, name in enumerate(metrics["class_names"]):
        tp, predicted_as, actual = by_hand[i][i], sum(row[i] for row in by_hand), sum(by_hand[i])
        precision = tp / predicted_as if predicted_as else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert float(rows[name]["precision"]) == pytest.approx(precision, abs=1e-6)
        assert float(rows[name]["recall"]) == pytest.approx(recall, abs=1e-6)
        assert float(rows[name]["f1"]) == pytest.approx(f1, abs=1e-6)
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _swap_in_middle_clips(data) -> None:
    """Give every video of ``data``'s one test shard the middle clip of the next video, of another class."""
    records = read_records(data, "test")
    (name,) = load_info(str(data)).splits["test"].shards
    with tf.io.TFRecordWriter(str(data / name)) as writer:
        for i, record in enumerate(records):
            frames = record.frames.copy()
            frames[1] = records[(i + 1) % len(records)].frames[1]
            writer.write(encode_example(dataclasses.replace(record, frames=frames), "jpeg", 95))


def test_evaluate_scores_each_video_by_the_mean_of_its_clips(trained, tmp_path):
    """Shards of 3 clips per video, one of them from a video of another class: predictions.csv has one
    row per video, video accuracy beats clip accuracy, and every number matches a recount from each
    clip's prediction (OpenCV-decoded frames, Keras predict, softmax averaged by hand)."""
    _, run, _ = trained
    data = tmp_path / "three-clip"
    make_shards(data, splits={"test": 2}, clips_per_video=3, color_cue=True, seed=7, shards_per_split=1)
    _swap_in_middle_clips(data)
    for name in ("model.keras", "config.json"):
        shutil.copy(run / name, tmp_path / name)
    result = _invoke("evaluate", tmp_path, "--data-dir", data, "--batch-size", "4")
    assert result.exit_code == 0, result.output
    assert "test: 18 clips of 6 videos" in result.output
    out = tmp_path / "eval" / "test-three-clip"  # not the run's own shards: not its eval/test
    metrics = json.loads((out / "metrics.json").read_text())
    with open(out / "predictions.csv", newline="") as fh:
        listed = list(csv.DictReader(fh))
    rows = {r["video_id"]: r for r in listed}

    model = keras.models.load_model(run / "model.keras")
    records = read_records(data, "test")
    assert len(listed) == len(rows) == 6 == metrics["num_videos"] and metrics["num_clips"] == 18
    clip_right, video_right, losses = [], [], []
    by_hand = np.zeros((CLASSES, CLASSES), int)
    for record in records:
        assert record.frames.shape[0] == 3
        logits = model.predict(record.frames, verbose=0).astype(np.float64)
        probs = _softmax(logits)
        mean = probs.mean(axis=0)
        clip_right.extend(logits.argmax(axis=1) == record.label)
        losses.extend(-np.log(probs[:, record.label]))
        video_right.append(mean.argmax() == record.label)
        by_hand[record.label, mean.argmax()] += 1
        row = rows[record.video_id]
        assert int(row["num_clips"]) == 3 and int(row["label"]) == record.label
        assert int(row["predicted"]) == mean.argmax() and row["predicted_name"] == metrics["class_names"][mean.argmax()]
        assert float(row["probability"]) == pytest.approx(mean.max(), abs=1e-5)
        assert [int(c) for c in row["top_k"].split()] == list(np.argsort(-mean, kind="stable")[:3])
    assert metrics["clip_accuracy"] == pytest.approx(np.mean(clip_right))
    assert metrics["video_accuracy"] == pytest.approx(np.mean(video_right))
    assert metrics["loss"] == pytest.approx(np.mean(losses), rel=1e-4)
    assert metrics["confusion_matrix"] == by_hand.tolist()
    assert sum(row["support"] for row in metrics["per_class"].values()) == 6  # videos, not clips
    # The swapped-in clip is scored wrong on its own, but outvoted by its video's two others.
    assert metrics["video_accuracy"] > metrics["clip_accuracy"]


def test_precision_recall_f1_match_a_hand_computation_with_zero_division():
    labels = [0, 0, 0, 1, 1, 1, 2, 3]
    predicted = [0, 0, 1, 1, 1, 1, 0, 3]  # class 2 never predicted
    cm = confusion_matrix(np.array(labels), np.array(predicted), 4)
    assert cm.tolist() == [[2, 1, 0, 0], [0, 3, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    scores = per_class_metrics(cm)
    np.testing.assert_allclose(scores["precision"], [2 / 3, 3 / 4, 0.0, 1.0])  # class 2: 0/0 := 0
    np.testing.assert_allclose(scores["recall"], [2 / 3, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(scores["f1"], [2 / 3, 2 * 0.75 / 1.75, 0.0, 1.0])
    np.testing.assert_array_equal(scores["support"], [3, 3, 1, 1])


def test_evaluate_names_a_corrupt_shard_in_one_line(trained, tmp_path):
    data, run, _ = trained
    shutil.copytree(data, tmp_path / "data")
    corrupt_shard(tmp_path / "data" / "test-00001-of-00002.tfrecord")
    result = _invoke("evaluate", run, "--data", tmp_path / "data")
    assert result.exit_code == 1
    assert result.output.startswith("Error: corrupt shard in split 'test': ")
    assert "test-00001-of-00002.tfrecord: record 0 (byte 0): data CRC mismatch" in result.output
    assert "function_node" not in result.output
    assert "test-00001-of-00002.tfrecord" in result.output and result.output.count("\n") == 1


def test_evaluate_refuses_shards_of_other_classes(trained, tmp_path):
    _, run, _ = trained
    make_shards(tmp_path / "other", classes=["MoveUp", "MoveLeft", "MoveDown"], splits={"test": 1})
    result = _invoke("evaluate", run, "--data", tmp_path / "other")
    assert result.exit_code == 1 and "labels would not mean the same classes" in result.output


def test_a_run_dir_is_never_overwritten_and_resume_needs_a_run(trained, tmp_path):
    data, run, _ = trained
    result = _invoke("train", data, run, "--epochs", "1")
    assert result.exit_code == 1 and "already holds a run" in result.output and "--resume" in result.output
    result = _invoke("train", data, tmp_path / "empty", "--resume")
    assert result.exit_code == 1 and "cannot resume" in result.output
    result = _invoke("train", data, run, "--resume", "--epochs", str(EPOCHS))
    assert result.exit_code == 1 and f"already trained {EPOCHS} epochs" in result.output
    result = _invoke("train", data, run, "--resume", "--epochs", "20", "--learning-rate", "1e-3", "--seed", "1")
    assert result.exit_code == 2 and "--learning-rate, --seed cannot change when resuming" in result.output
    result = _invoke("train", data, tmp_path / "r", "--val-split", "valid")
    assert result.exit_code == 1 and "has no split 'valid'; it has test, train, val" in result.output


def test_early_stopping_carries_its_state_over_a_resume():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    stopper = ResumableEarlyStopping(patience=3, best=0.5, wait=2)
    stopper.set_model(model)
    stopper.on_train_begin()
    stopper.on_epoch_end(7, {"val_loss": 0.6})  # third epoch without beating 0.5
    assert model.stop_training is True
    fresh = ResumableEarlyStopping(patience=3, best=None, wait=0)
    fresh.set_model(model)
    model.stop_training = False
    fresh.on_train_begin()
    fresh.on_epoch_end(7, {"val_loss": 0.6})
    assert model.stop_training is False and fresh.best == 0.6


# -- slow: more training runs ---------------------------------------------------------------------

@pytest.mark.slow
def test_resume_continues_history_and_optimizer(trained, tmp_path):
    data, run, _ = trained
    shutil.copytree(run, tmp_path / "run")
    before = _history(run)
    steps = -(-SPLITS["train"] * CLASSES // 3)
    assert int(keras.models.load_model(run / "checkpoints" / "last.keras").optimizer.iterations) == EPOCHS * steps
    result = _invoke("train", data, tmp_path / "run", "--epochs", EPOCHS + 2, "--resume")
    assert result.exit_code == 0, result.output
    after = _history(tmp_path / "run")
    assert len(after["loss"]) == EPOCHS + 2 and after["loss"][:EPOCHS] == before["loss"]
    resumed = keras.models.load_model(tmp_path / "run" / "checkpoints" / "last.keras")
    assert int(resumed.optimizer.iterations) == (EPOCHS + 2) * steps
    with open(tmp_path / "run" / "history.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == list(range(EPOCHS + 2))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["resumed_at_epoch"] == EPOCHS
    assert config["train"]["learning_rate"] == 3e-4 and config["train"]["epochs"] == EPOCHS + 2  # stored + new


@pytest.mark.slow
def test_same_seed_gives_the_same_history(trained, tmp_path):
    data, run, _ = trained
    config = TrainConfig(epochs=3, batch_size=3, learning_rate=3e-4, seed=3, verbose=0)
    first = train(data, tmp_path / "a", config)
    assert train(data, tmp_path / "b", config) == first
    assert first["loss"] == _history(run)["loss"][:3]


@pytest.mark.slow
def test_train_names_a_corrupt_shard_in_one_line(trained, tmp_path):
    data, _, _ = trained
    shutil.copytree(data, tmp_path / "data")
    corrupt_shard(tmp_path / "data" / "train-00000-of-00002.tfrecord")
    result = _invoke("train", tmp_path / "data", tmp_path / "run", "--epochs", "1")
    assert result.exit_code == 1
    assert result.output.startswith("Error: corrupt shard in split 'train': ")
    assert "train-00000-of-00002.tfrecord: record 0 (byte 0): data CRC mismatch" in result.output
    assert "function_node" not in result.output and result.output.count("\n") == 1


@pytest.mark.slow
def test_mixed_precision_and_disk_cache_train(trained, tmp_path):
    data, _, _ = trained
    result = _invoke("train", data, tmp_path / "run", "--epochs", "2", "--batch-size", "3", "--mixed-precision",
                     "--cache", "disk")
    assert result.exit_code == 0, result.output
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert model.get_layer(index=2).dtype_policy.name == "mixed_bfloat16"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["mixed_precision"] == "bfloat16"
    assert not (tmp_path / "run" / "cache").exists()  # the on-disk cache is removed after training
    assert keras.mixed_precision.global_policy().name == "float32"  # the policy is restored


@pytest.mark.slow
def test_learns_motion_direction_without_a_colour_cue(tmp_path):
    """The synthetic classes differ only in the direction a square moves."""
    make_shards(tmp_path / "data", splits={"train": 12, "val": 4, "test": 4}, n_frames=8)
    train(tmp_path / "data", tmp_path / "run", TrainConfig(epochs=20, batch_size=4, learning_rate=3e-4, seed=0,
                                                         verbose=0))
    result = _invoke("evaluate", tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "eval" / "test" / "metrics.json").read_text())
    assert metrics["video_accuracy"] >= 0.6, result.output  # chance is 1/3


@pytest.mark.parametrize("epochs", [3, 12])
def test_history_plot_numbers_epochs_in_whole_numbers(epochs):
    curve = list(np.linspace(1.0, 0.2, epochs))
    figure = history_figure({"loss": curve, "val_loss": curve, "accuracy": curve, "val_accuracy": curve})
    for ax in figure.axes:
        ticks = ax.get_xticks()
        low, high = ax.get_xlim()
        shown = [tick for tick in ticks if low <= tick <= high]
        assert shown and all(float(tick).is_integer() for tick in ticks), ticks  # no epoch 1.5
        assert set(shown) <= set(range(1, epochs + 1))


def test_an_output_without_a_val_split_trains_without_validation_and_says_so(tmp_path):
    """UCF101's official folds have no val split: train says it trains without validation, keeps the last
    epoch as model.keras, and evaluate scores that model; --val-split none says the same explicitly."""
    make_shards(tmp_path / "data", splits={"train": 2, "test": 1}, color_cue=True)
    result = CliRunner().invoke(main, ["train", str(tmp_path / "data"), str(tmp_path / "run"), "--epochs", "1",
                                       "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (f"{tmp_path / 'data'} has no val split: training without validation, "
                                             "model.keras will be the last epoch's (--val-split SPLIT validates on "
                                             "another split).")
    history = _history(tmp_path / "run")
    assert set(history) == {"loss", "accuracy"} and len(history["loss"]) == 1
    assert (f"trained 1 epoch without validation; model.keras is the last epoch's (loss {history['loss'][0]:.4f}, "
            f"accuracy {history['accuracy'][0]:.3f})") in result.stdout.splitlines()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["val_split"] is None
    kept, last = (keras.models.load_model(tmp_path / "run" / name) for name in ("model.keras", "checkpoints/last.keras"))
    for a, b in zip(kept.get_weights(), last.get_weights()):
        np.testing.assert_array_equal(a, b)
    evaluated = _invoke("evaluate", tmp_path / "run")
    assert evaluated.exit_code == 0 and "test: 3 clips of 3 videos" in evaluated.output, evaluated.output

    explicit = _invoke("train", tmp_path / "data", tmp_path / "run2", "--epochs", "2", "--batch-size", "3",
                       "--val-split", "none")
    assert explicit.exit_code == 0, explicit.output
    assert explicit.stderr.splitlines()[0] == ("Training without validation (--val-split none): model.keras will be "
                                               "the last epoch's.")
    assert "trained 2 epochs without validation;" in explicit.stdout


def test_early_stopping_needs_validation(tmp_path):
    make_shards(tmp_path / "data", splits={"train": 1, "test": 1})
    refused = _invoke("train", tmp_path / "data", tmp_path / "run", "--val-split", "none", "--patience", "2")
    assert refused.exit_code == 2 and refused.stderr.splitlines()[-1] == (
        "Error: --patience stops when val_loss stops falling; it needs validation, which --val-split none turns off")
    refused = _invoke("train", tmp_path / "data", tmp_path / "run", "--patience", "2")
    assert refused.exit_code == 1 and refused.stderr.splitlines() == [
        f"Error: {tmp_path / 'data'} has no val split to validate on, and --patience stops when val_loss stops "
        "falling: drop --patience, or name a split with --val-split"]
    assert not (tmp_path / "run").exists()
    with pytest.raises(VidshardError, match="`patience` stops when val_loss stops falling"):
        TrainConfig(patience=2, val_split=None)


def test_evaluate_on_other_shards_never_replaces_the_runs_own_results(trained, tmp_path):
    data, run, _ = trained
    for name in ("model.keras", "config.json"):
        shutil.copy(run / name, tmp_path / name)
    assert _invoke("evaluate", tmp_path).exit_code == 0
    own = (tmp_path / "eval" / "test" / "metrics.json").read_bytes()
    shutil.copytree(data, tmp_path / "elsewhere" / "other")
    result = _invoke("evaluate", tmp_path, "--data-dir", tmp_path / "elsewhere" / "other")
    assert result.exit_code == 0 and f"results: {tmp_path / 'eval' / 'test-other'}" in result.output, result.output
    assert json.loads((tmp_path / "eval" / "test-other" / "metrics.json").read_text())["data_dir"] == \
        str(tmp_path / "elsewhere" / "other")
    assert (tmp_path / "eval" / "test" / "metrics.json").read_bytes() == own
    # Another folder of the same name: refused, nothing overwritten.
    shutil.copytree(data, tmp_path / "other")
    before = (tmp_path / "eval" / "test-other" / "metrics.json").read_bytes()
    result = _invoke("evaluate", tmp_path, "--data-dir", tmp_path / "other")
    assert result.exit_code == 1 and result.stderr.splitlines() == [
        f"Error: {tmp_path / 'eval' / 'test-other'} holds the results on {tmp_path / 'elsewhere' / 'other'}; move it "
        f"away to score {tmp_path / 'other'} (results on other shards go to {tmp_path / 'eval' / 'test'}-FOLDER)"]
    assert (tmp_path / "eval" / "test-other" / "metrics.json").read_bytes() == before
