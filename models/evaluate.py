"""Evaluate a trained run on one split: loss, accuracy, confusion matrix, per-class precision/recall/F1.

The tutorial read its test set twice (once for labels, once through ``model.predict``) from a
dataset that reshuffled between the two reads, so its labels and predictions did not line up.
Here one pass over an unshuffled dataset yields labels, logits and video ids together, and every
number is computed from that pass.  Every stored clip is scored (``clips="all"``).

Precision, recall and F1 come from the confusion matrix with numpy.  A ratio whose denominator
is 0 (a class never predicted, or absent from the split) is defined as 0, as scikit-learn's
``zero_division=0`` does; ``metrics.json`` says so in ``zero_division``.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Any

import keras
import numpy as np

from vidshard.errors import VidshardError
from vidshard.format.info import DatasetInfo, load_info
from vidshard.models.plots import plot_confusion_matrix
from vidshard.models.train import CONFIG_FILE, MODEL_FILE, check_model_fits
from vidshard.reader import DATA_ERRORS, data_error, make_dataset

EVAL_DIR = "eval"
METRICS_JSON = "metrics.json"
PER_CLASS_CSV = "per_class.csv"
PREDICTIONS_CSV = "predictions.csv"
CONFUSION_PNG = "confusion_matrix.png"


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of clips of actual class ``i`` predicted as class ``j``."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return cm


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ``numerator / denominator`` with 0 where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def per_class_metrics(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of every class from a confusion matrix (0/0 := 0)."""
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0)  # column sums: clips predicted as the class (tp + fp)
    actual = cm.sum(axis=1)     # row sums: clips of the class (tp + fn)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, actual)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


def _check_compatible(model: keras.Model, info: DatasetInfo, data_dir: str, run_config: dict[str, Any]) -> None:
    """Refuse data whose clip shape, class count or class names differ from what the model learned."""
    check_model_fits(model, info, data_dir)
    trained_names = run_config.get("dataset", {}).get("class_names")
    if trained_names is not None and trained_names != info.class_names:
        raise VidshardError(f"{data_dir} names its classes {info.class_names}, but the model was trained "
                            f"on {trained_names}: labels would not mean the same classes")


def predict_split(model: keras.Model, data_dir: str, split: str, batch_size: int
                  ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One pass over ``split`` in a fixed order (unshuffled): ``(labels [N], logits [N, classes], video ids [N])``."""
    dataset = make_dataset(data_dir, split, batch_size, shuffle=False, cache=False, with_ids=True, clips="all")
    labels, logits, ids = [], [], []
    try:
        for clips, batch_labels, batch_ids in dataset:
            logits.append(np.asarray(model.predict_on_batch(clips), np.float32))
            labels.append(batch_labels.numpy())
            ids.extend(v.decode("utf-8") for v in batch_ids.numpy())
    except DATA_ERRORS as exc:
        raise data_error(data_dir, (split,), exc) from None
    num_classes = model.output_shape[-1]
    if not labels:
        return np.zeros(0, np.int64), np.zeros((0, num_classes), np.float32), []
    return np.concatenate(labels).astype(np.int64), np.concatenate(logits), ids


def evaluate(run_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None, split: str = "test",
             batch_size: int | None = None) -> dict[str, Any]:
    """Score ``run_dir``'s ``model.keras`` on ``split`` and write the results to ``run_dir/eval/<split>/``.

    ``data_dir`` and ``batch_size`` default to the training run's (from ``config.json``).
    Writes ``metrics.json``, ``per_class.csv``, ``predictions.csv`` (one row per clip) and
    ``confusion_matrix.png``; returns the content of ``metrics.json`` plus ``out_dir``.
    """
    run_dir = os.fspath(run_dir)
    model_path = os.path.join(run_dir, MODEL_FILE)
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(model_path):
        raise VidshardError(f"{run_dir} has no {MODEL_FILE}: train first (vidshard train DATA_DIR {run_dir})")
    run_config: dict[str, Any] = {}
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as fh:
            run_config = json.load(fh)
    if data_dir is None:
        data_dir = run_config.get("data_dir")
        if data_dir is None:
            raise VidshardError(f"{run_dir} has no {CONFIG_FILE} naming its data; pass `data_dir`")
    data_dir = os.fspath(data_dir)
    batch_size = batch_size or run_config.get("train", {}).get("batch_size", 8)
    info = load_info(data_dir)
    model = keras.models.load_model(model_path, compile=False)
    _check_compatible(model, info, data_dir, run_config)

    labels, logits, ids = predict_split(model, data_dir, split, batch_size)
    if not len(labels):
        raise VidshardError(f"split {split!r} of {data_dir} holds no clips to evaluate")
    predicted = logits.argmax(axis=1)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    cm = confusion_matrix(labels, predicted, info.num_classes)
    scores = per_class_metrics(cm)
    names = info.class_names
    metrics = {
        "split": split,
        "data_dir": os.path.abspath(data_dir),
        "model": os.path.abspath(model_path),
        "num_clips": int(len(labels)),
        "num_videos": len(set(ids)),
        "loss": float(keras.ops.convert_to_numpy(loss)),
        "accuracy": float(np.mean(predicted == labels)),
        "class_names": names,
        "confusion_matrix": cm.tolist(),
        "per_class": {name: {key: float(values[i]) if key != "support" else int(values[i])
                             for key, values in scores.items()} for i, name in enumerate(names)},
        "macro_avg": {key: float(np.mean(scores[key])) for key in ("precision", "recall", "f1")},
        "zero_division": 0.0,
    }
    out_dir = os.path.join(run_dir, EVAL_DIR, split)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, METRICS_JSON), "w", encoding="utf-8") as fh:
        json.dump(metrics, fh, indent=2)
    with open(os.path.join(out_dir, PER_CLASS_CSV), "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["class", "precision", "recall", "f1", "support"])
        for name, row in metrics["per_class"].items():
            writer.writerow([name, f"{row['precision']:.6f}", f"{row['recall']:.6f}", f"{row['f1']:.6f}",
                             row["support"]])
    with open(os.path.join(out_dir, PREDICTIONS_CSV), "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video_id", "label", "predicted", "label_name", "predicted_name"])
        for video_id, label, guess in zip(ids, labels, predicted):
            writer.writerow([video_id, int(label), int(guess), names[label], names[guess]])
    plot_confusion_matrix(cm, names, os.path.join(out_dir, CONFUSION_PNG),
                          title=f"Confusion matrix, {split} split ({len(labels)} clips)")
    return {**metrics, "out_dir": out_dir}


def format_table(metrics: dict[str, Any]) -> str:
    """The per-class table printed by ``vidshard evaluate``."""
    width = max(len("macro avg"), *(len(n) for n in metrics["class_names"]))
    lines = [f"{'class':<{width}}  precision  recall      f1  support"]
    for name, row in metrics["per_class"].items():
        lines.append(f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:6.3f}  "
                     f"{row['support']:7d}")
    macro = metrics["macro_avg"]
    lines.append(f"{'macro avg':<{width}}  {macro['precision']:9.3f}  {macro['recall']:6.3f}  {macro['f1']:6.3f}  "
                 f"{metrics['num_clips']:7d}")
    return "\n".join(lines)
