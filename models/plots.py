"""Training-history and confusion-matrix plots, written as PNG files.

The tutorial's ``plot_history`` and ``plot_confusion_matrix``, minus their display and global
state: figures are built with ``matplotlib.figure.Figure`` (no pyplot, so no GUI backend and no
figure left open), the confusion matrix is drawn with matplotlib alone (no seaborn), and each
function returns the path it wrote.
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

#: No software/version stamp: the same data gives the same PNG bytes whatever matplotlib wrote them.
_PNG_METADATA = {"Software": None}


def plot_history(history: Mapping[str, Sequence[float]], path: str | os.PathLike) -> str:
    """Plot loss and accuracy per epoch, train and validation, in two panels (as the tutorial)."""
    history_figure(history).savefig(path, dpi=80, metadata=_PNG_METADATA)
    return os.fspath(path)


def history_figure(history: Mapping[str, Sequence[float]]) -> Figure:
    """The figure of :func:`plot_history`: loss above accuracy, epochs numbered in whole numbers."""
    fig = Figure(figsize=(10, 7), layout="constrained")
    ax_loss, ax_acc = fig.subplots(2)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key, title in ((ax_loss, "loss", "Loss"), (ax_acc, "accuracy", "Accuracy")):
        ax.plot(epochs, history[key], marker=".", label="Train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker=".", label="Validation")
        ax.set_title(title)
        ax.set_ylabel(title)
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
        ax.grid(alpha=0.3)
        ax.legend()
    max_loss = max([*history["loss"], *history.get("val_loss", [])])
    ax_loss.set_ylim(0, math.ceil(max_loss) if math.isfinite(max_loss) else None)
    ax_acc.set_ylim(0, 1)
    return fig


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike,
                          title: str = "Confusion matrix") -> str:
    """Draw ``cm`` (rows: actual class, columns: predicted class) with counts in every cell."""
    n = len(class_names)
    side = max(4.0, 0.6 * n + 2.5)
    fig = Figure(figsize=(side, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8, ticks=MaxNLocator(integer=True))
    threshold = cm.max() / 2 if cm.size and cm.max() > 0 else 1
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if cm[i, j] > threshold else "black")
    ax.set_xticks(range(n), labels=class_names, rotation=90)
    ax.set_yticks(range(n), labels=class_names)
    ax.set_xlabel("Predicted action")
    ax.set_ylabel("Actual action")
    ax.set_title(title)
    fig.savefig(path, dpi=80, metadata=_PNG_METADATA)
    return os.fspath(path)
