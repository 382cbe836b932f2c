"""Evaluate a trained run on one split: clip and video accuracy, confusion matrix, per-class precision/recall/F1.

The tutorial read its test set twice (once for labels, once through ``model.predict``) from a
dataset that reshuffled between the two reads, so its labels and predictions did not line up.
Here one pass over an unshuffled dataset yields labels, logits and video ids together, and every
number is computed from that pass.  Every stored clip is scored (``clips="all"``).

Clip accuracy scores each clip on its own.  Video accuracy scores each video by the mean of its
clips' softmax probabilities, the multi-view testing of TSN, SlowFast and PyTorchVideo; the
confusion matrix, the per-class scores and ``predictions.csv`` are per video.  A video has as many
clips as its record stores, so splits sharded with different ``clips_per_video`` score alike.

Precision, recall and F1 come from the confusion matrix with numpy.  A ratio whose denominator
is 0 (a class never predicted, or absent from the split) is defined as 0, as scikit-learn's
``zero_division=0`` does; ``metrics.json`` says so in ``zero_division``.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Any, NamedTuple

import keras
import numpy as np

from vidshard.errors import VidshardError
from vidshard.format.info import DatasetInfo, load_info
from vidshard.models.plots import plot_confusion_matrix
from vidshard.models.run_dir import CONFIG_FILE, MODEL_FILE
from vidshard.models.train import check_model_fits
from vidshard.readers.tf_data import DATA_ERRORS, data_error, make_dataset

EVAL_DIR = "eval"
METRICS_JSON = "metrics.json"
PER_CLASS_CSV = "per_class.csv"
PREDICTIONS_CSV = "predictions.csv"
CONFUSION_PNG = "confusion_matrix.png"


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of examples (videos here) of actual class ``i`` predicted as class ``j``."""
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
    predicted = cm.sum(axis=0)  # column sums: examples predicted as the class (tp + fp)
    actual = cm.sum(axis=1)     # row sums: examples of the class (tp + fn)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, actual)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


#: Top-k accuracy is reported for k = 5, or for every class where there are fewer.
TOP_K = 5


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of ``logits [N, classes]`` in float64, shifted by the row maximum so it cannot overflow."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``logits [N, classes]`` (float64, overflow-safe: see :func:`log_softmax`)."""
    return np.exp(log_softmax(logits))


def cross_entropy(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean ``-log softmax(logits)[label]`` over the rows: Keras's sparse categorical cross-entropy from logits."""
    log_probs = log_softmax(logits)
    return float(-np.mean(log_probs[np.arange(len(log_probs)), np.asarray(labels, np.int64)]))


def top_k_accuracy(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """The fraction of rows of ``scores [N, classes]`` whose label is among the row's ``k`` highest scores.

    Equal scores rank by class index, as ``argmax`` does, so ``k=1`` is the plain accuracy.
    """
    scores = np.asarray(scores)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))


class VideoScores(NamedTuple):
    """Clips grouped into videos, in the order each video first appears in the pass."""

    video_ids: list[str]
    labels: np.ndarray     # int64 [V]
    probs: np.ndarray      # float64 [V, classes]: the mean of the video's clips' softmax probabilities
    num_clips: np.ndarray  # int64 [V]


def video_scores(ids: list[str], labels: np.ndarray, logits: np.ndarray) -> VideoScores:
    """Average the softmax probabilities of every clip of each video (``ids[i]`` is clip ``i``'s video).

    No clip count is assumed: a video has as many clips as carry its id.  The clips of one video
    must share a label; a video whose clips disagree is an error in the shards.
    """
    labels = np.asarray(labels, np.int64)
    order = list(dict.fromkeys(ids))
    index = {video_id: i for i, video_id in enumerate(order)}
    rows = np.array([index[video_id] for video_id in ids], np.int64)
    num_clips = np.bincount(rows, minlength=len(order)).astype(np.int64)
    probs = np.zeros((len(order), np.shape(logits)[1]), np.float64)
    np.add.at(probs, rows, softmax(logits))
    video_labels = np.full(len(order), -1, np.int64)
    video_labels[rows] = labels
    disagree = sorted({ids[i] for i in np.flatnonzero(video_labels[rows] != labels)})
    if disagree:
        raise VidshardError(f"the clips of video {disagree[0]!r} carry different labels; the shards are inconsistent")
    return VideoScores(order, video_labels, probs / num_clips[:, None], num_clips)


def score(ids: list[str], labels: np.ndarray, logits: np.ndarray, class_names: list[str]
          ) -> tuple[dict[str, Any], VideoScores]:
    """The metrics of one pass (clip ``i``: ``ids[i]``, ``labels[i]``, ``logits[i]``) and its video scores.

    Clip metrics score each clip's own logits; video metrics, the confusion matrix and the
    per-class scores score each video by its mean softmax (:func:`video_scores`).
    """
    labels = np.asarray(labels, np.int64)
    videos = video_scores(ids, labels, logits)
    top_k = min(TOP_K, len(class_names))
    cm = confusion_matrix(videos.labels, videos.probs.argmax(axis=1), len(class_names))
    per_class = per_class_metrics(cm)
    metrics = {
        "num_clips": int(len(labels)),
        "num_videos": len(videos.video_ids),
        "loss": cross_entropy(labels, logits),
        "clip_accuracy": top_k_accuracy(labels, logits, 1),
        "clip_top5": top_k_accuracy(labels, logits, top_k),
        "video_accuracy": top_k_accuracy(videos.labels, videos.probs, 1),
        "video_top5": top_k_accuracy(videos.labels, videos.probs, top_k),
        "top_k": top_k,
        "class_names": list(class_names),
        "confusion_matrix": cm.tolist(),
        "per_class": {name: {key: float(values[i]) if key != "support" else int(values[i])
                             for key, values in per_class.items()} for i, name in enumerate(class_names)},
        "macro_avg": {key: float(np.mean(per_class[key])) for key in ("precision", "recall", "f1")},
        "zero_division": 0.0,
    }
    return metrics, videos


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

    ``data_dir`` and ``batch_size`` default to the training run's (from ``config.json``); results on
    other shards go to a folder of their own (:func:`results_dir`).
    Writes ``metrics.json`` (see :func:`score`), ``per_class.csv``, ``predictions.csv`` (one row per
    video) and ``confusion_matrix.png`` (videos); returns the content of ``metrics.json`` plus ``out_dir``.
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
    scores, videos = score(ids, labels, logits, info.class_names)
    metrics = {"split": split, "data_dir": os.path.abspath(data_dir), "model": os.path.abspath(model_path), **scores}
    out_dir = results_dir(run_dir, split, data_dir, run_config)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, METRICS_JSON), "w", encoding="utf-8") as fh:
        json.dump(metrics, fh, indent=2)
    with open(os.path.join(out_dir, PER_CLASS_CSV), "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["class", "precision", "recall", "f1", "support"])
        for name, row in metrics["per_class"].items():
            writer.writerow([name, f"{row['precision']:.6f}", f"{row['recall']:.6f}", f"{row['f1']:.6f}",
                             row["support"]])
    _write_predictions(os.path.join(out_dir, PREDICTIONS_CSV), videos, info.class_names, metrics["top_k"])
    plot_confusion_matrix(np.array(metrics["confusion_matrix"]), info.class_names,
                          os.path.join(out_dir, CONFUSION_PNG),
                          title=f"Confusion matrix, {split} split\n"
                                f"({metrics['num_videos']} videos, {metrics['num_clips']} clips)")
    return {**metrics, "out_dir": out_dir}


def results_dir(run_dir: str, split: str, data_dir: str, run_config: dict[str, Any]) -> str:
    """Where the results of ``split`` of ``data_dir`` go: ``eval/SPLIT`` for the run's own shards,
    ``eval/SPLIT-NAME`` for other shards in a folder NAME, so that scoring other data never replaces
    the run's own results.  A folder that holds the results of other shards is refused, never overwritten.
    """
    data_dir = os.path.abspath(data_dir)
    own = run_config.get("data_dir")
    name = split if own is None or os.path.abspath(own) == data_dir else f"{split}-{os.path.basename(data_dir)}"
    out_dir = os.path.join(run_dir, EVAL_DIR, name)
    try:
        with open(os.path.join(out_dir, METRICS_JSON), encoding="utf-8") as fh:
            earlier = json.load(fh).get("data_dir")
    except (OSError, ValueError, AttributeError):
        earlier = None
    if earlier is not None and earlier != data_dir:
        raise VidshardError(f"{out_dir} holds the results on {earlier}; move it away to score {data_dir} "
                            f"(results on other shards go to {os.path.join(run_dir, EVAL_DIR, split)}-FOLDER)")
    return out_dir


def _write_predictions(path: str, videos: VideoScores, names: list[str], top_k: int) -> None:
    """One row per video, in the pass's order: its label, the class of highest mean probability, that
    probability, its clip count and the ``top_k`` classes best first (space-separated ids)."""
    ranked = np.argsort(-videos.probs, axis=1, kind="stable")[:, :top_k]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video_id", "label", "predicted", "label_name", "predicted_name", "num_clips",
                         "probability", "top_k"])
        for video_id, label, probs, clips, best in zip(videos.video_ids, videos.labels, videos.probs,
                                                         videos.num_clips, ranked):
            guess = int(best[0])
            writer.writerow([video_id, int(label), guess, names[label], names[guess], int(clips),
                             f"{probs[guess]:.6f}", " ".join(str(int(c)) for c in best)])


def summary_line(metrics: dict[str, Any]) -> str:
    """The one-line result printed by ``vidshard evaluate``: counts, loss, clip and video accuracy, top-1 and top-k."""
    k = metrics["top_k"]
    return (f"{metrics['split']}: {metrics['num_clips']} clips of {metrics['num_videos']} videos; "
            f"loss {metrics['loss']:.4f}; clip accuracy {metrics['clip_accuracy']:.3f} "
            f"(top-{k} {metrics['clip_top5']:.3f}), video accuracy {metrics['video_accuracy']:.3f} "
            f"(top-{k} {metrics['video_top5']:.3f})")


def format_table(metrics: dict[str, Any]) -> str:
    """The per-class table printed by ``vidshard evaluate``, at video level (support counts videos)."""
    width = max(len("macro avg"), *(len(n) for n in metrics["class_names"]))
    lines = [f"{'class':<{width}}  precision  recall      f1  support"]
    for name, row in metrics["per_class"].items():
        lines.append(f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:6.3f}  "
                     f"{row['support']:7d}")
    macro = metrics["macro_avg"]
    lines.append(f"{'macro avg':<{width}}  {macro['precision']:9.3f}  {macro['recall']:6.3f}  {macro['f1']:6.3f}  "
                 f"{metrics['num_videos']:7d}")
    return "\n".join(lines)
