"""Clip and video scores of ``vidshard evaluate`` against numbers worked out by hand.

Logits are the logs of chosen probabilities, so every clip's softmax is exactly the row written
here and the means and accuracies below can be checked with pencil and paper.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from vidshard.errors import VidshardError
from vidshard.models.evaluate import score, softmax, top_k_accuracy, video_scores

NAMES = ["x", "y", "z"]
#: Three videos of 3, 3 and 2 clips; each row is one clip's softmax probabilities over x, y, z.
IDS = ["a", "a", "a", "b", "b", "b", "c", "c"]
LABELS = [0, 0, 0, 1, 1, 1, 2, 2]
PROBS = np.array([
    [0.60, 0.30, 0.10],  # a: right
    [0.30, 0.45, 0.25],  # a: wrong (y)
    [0.60, 0.10, 0.30],  # a: right       -> mean [0.5, 0.85/3, 0.65/3]: x, right
    [0.50, 0.40, 0.10],  # b: wrong (x)
    [0.45, 0.35, 0.20],  # b: wrong (x)
    [0.05, 0.90, 0.05],  # b: right       -> mean [1/3, 0.55, 0.35/3]: y, right
    [0.10, 0.20, 0.70],  # c: right
    [0.80, 0.15, 0.05],  # c: wrong (x)   -> mean [0.45, 0.175, 0.375]: x, wrong
])
LOGITS = np.log(PROBS)


def test_video_scores_average_each_videos_clip_probabilities():
    videos = video_scores(IDS, np.array(LABELS), LOGITS)
    assert videos.video_ids == ["a", "b", "c"]
    np.testing.assert_array_equal(videos.labels, [0, 1, 2])
    np.testing.assert_array_equal(videos.num_clips, [3, 3, 2])  # no fixed clip count assumed
    np.testing.assert_allclose(videos.probs, [[0.5, 0.85 / 3, 0.65 / 3],
                                              [1 / 3, 0.55, 0.35 / 3],
                                              [0.45, 0.175, 0.375]])


def test_video_accuracy_differs_from_clip_accuracy_as_computed_by_hand():
    metrics, _ = score(IDS, LABELS, LOGITS, NAMES)
    # Clips right: a 2 of 3, b 1 of 3, c 1 of 2 -> 4 of 8.  Videos right: a, b (not c) -> 2 of 3.
    assert metrics["clip_accuracy"] == pytest.approx(4 / 8)
    assert metrics["video_accuracy"] == pytest.approx(2 / 3)
    assert metrics["num_clips"] == 8 and metrics["num_videos"] == 3
    # Three classes: "top-5" is top-3, which every label is in, and metrics.json says k = 3.
    assert metrics["top_k"] == 3 and metrics["clip_top5"] == 1.0 and metrics["video_top5"] == 1.0
    # Mean clip cross-entropy: -log of each clip's probability of its label.
    by_hand = -(math.log(0.6) + math.log(0.3) + math.log(0.6) + math.log(0.4) + math.log(0.35) + math.log(0.9)
                + math.log(0.7) + math.log(0.05)) / 8
    assert metrics["loss"] == pytest.approx(by_hand, rel=1e-12)
    # Confusion matrix and per-class scores count videos: a x->x, b y->y, c z->x.
    assert metrics["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert metrics["per_class"]["x"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert metrics["per_class"]["y"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert metrics["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert metrics["macro_avg"]["f1"] == pytest.approx((2 / 3 + 1) / 3)


def test_top_k_accuracy_by_hand():
    # Top-2 of the clips: only c's second clip (x 0.80, y 0.15) misses its label z -> 7 of 8.
    assert top_k_accuracy(np.array(LABELS), PROBS, 2) == pytest.approx(7 / 8)
    assert top_k_accuracy(np.array(LABELS), LOGITS, 2) == pytest.approx(7 / 8)  # the same ranking
    assert top_k_accuracy(np.array(LABELS), PROBS, 1) == pytest.approx(4 / 8)
    videos = video_scores(IDS, np.array(LABELS), LOGITS)
    assert top_k_accuracy(videos.labels, videos.probs, 2) == 1.0  # c: x 0.45, z 0.375
    # Ties rank by class index, as argmax does.
    assert top_k_accuracy(np.array([1]), np.array([[0.5, 0.5, 0.0]]), 1) == 0.0
    assert top_k_accuracy(np.array([1]), np.array([[0.5, 0.5, 0.0]]), 2) == 1.0


def test_top_k_is_five_where_there_are_more_classes():
    names = [f"c{i}" for i in range(7)]
    logits = np.array([[6.0, 5, 4, 3, 2, 1, 0],    # label 6 is ranked last: outside the top 5
                       [0.0, 1, 2, 3, 4, 5, 6],    # label 2 is ranked fifth: inside
                       [0.0, 0, 0, 0, 0, 0, 9]])   # label 6 is first
    metrics, _ = score(["u", "v", "w"], [6, 2, 6], logits, names)
    assert metrics["top_k"] == 5
    assert metrics["clip_top5"] == pytest.approx(2 / 3) and metrics["video_top5"] == pytest.approx(2 / 3)
    assert metrics["clip_accuracy"] == pytest.approx(1 / 3)


def test_clips_of_one_video_with_different_labels_are_refused():
    with pytest.raises(VidshardError, match="the clips of video 'a' carry different labels"):
        video_scores(["a", "a", "b"], np.array([0, 1, 1]), np.zeros((3, 2)))


def test_softmax_does_not_overflow():
    np.testing.assert_allclose(softmax(np.array([[1000.0, 1000.0, -1000.0]])), [[0.5, 0.5, 0.0]])
