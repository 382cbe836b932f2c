"""The run directory: its file names, atomic JSON, and the checks that start a fresh or a resumed run.

What a run leaves on disk and how a resumed run finds its settings and history again; the fit
loop (:mod:`vidshard.models.train`) and evaluation read the same names from here.  Imports
neither Keras nor TensorFlow.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from vidshard.errors import VidshardError

MODEL_FILE = "model.keras"
LAST_CHECKPOINT = os.path.join("checkpoints", "last.keras")
CONFIG_FILE = "config.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
HISTORY_PNG = "history.png"
CACHE_DIR = "cache"

#: What a resumed run may change; everything else is the run's own (from its ``config.json``).
RESUME_MAY_CHANGE = ("epochs", "patience", "cache", "verbose")


class _RunConfig(Protocol):
    """What :func:`prepare_run_dir` needs of a training config (:class:`~vidshard.models.train.TrainConfig`)."""

    resume: bool

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any: ...


C = TypeVar("C", bound=_RunConfig)


def write_json(path: str, data: Any) -> None:
    """Write JSON atomically, so an interrupted run never leaves a half-written file."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def best_epoch(history: dict[str, list[float]]) -> int | None:
    """1-based epoch with the lowest ``val_loss`` (the one ``model.keras`` holds), or None."""
    losses = history.get("val_loss", [])
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    return min(finite, key=losses.__getitem__) + 1 if finite else None


def best_so_far(history: dict[str, list[float]]) -> tuple[float | None, int]:
    """Lowest ``val_loss`` of earlier epochs and the number of epochs since it (0, 0 when none)."""
    epoch = best_epoch(history)
    if epoch is None:
        return None, 0
    losses = history["val_loss"]
    return losses[epoch - 1], len(losses) - epoch


def prepare_run_dir(run_dir: str, config: C) -> tuple[C, dict[str, list[float]]]:
    """Check ``run_dir`` for a fresh or a resumed run; return the config to use and the history so far.

    A resumed run keeps its stored settings (learning rate, batch size, seed, ...) and takes
    only :data:`RESUME_MAY_CHANGE` from ``config``.
    """
    if config.resume:
        for name in (LAST_CHECKPOINT, HISTORY_JSON, CONFIG_FILE):
            if not os.path.isfile(os.path.join(run_dir, name)):
                raise VidshardError(f"cannot resume: {run_dir} has no {name} (was a run started there?)")
        stored = type(config).from_dict(read_json(os.path.join(run_dir, CONFIG_FILE))["train"])
        config = replace(stored, resume=True, **{name: getattr(config, name) for name in RESUME_MAY_CHANGE})
        return config, read_json(os.path.join(run_dir, HISTORY_JSON))
    taken = [n for n in (MODEL_FILE, LAST_CHECKPOINT, HISTORY_JSON) if os.path.exists(os.path.join(run_dir, n))]
    if taken:
        raise VidshardError(f"{run_dir} already holds a run ({taken[0]}); use `resume` or another directory")
    return config, {}
