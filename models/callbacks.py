"""Training's own Keras callbacks: the JSON history file and early stopping that survives a resume.

The rest of training's callbacks are Keras's (``ModelCheckpoint``, ``CSVLogger``); these two
add what a resumable run needs.  Imports Keras and :mod:`vidshard.models.run_dir`.
"""
from __future__ import annotations

from typing import Any

import keras

from vidshard.models.run_dir import write_json


class HistoryFile(keras.callbacks.Callback):
    """Writes the whole history (earlier runs' epochs included) to JSON after every epoch."""

    def __init__(self, path: str, history: dict[str, list[float]]) -> None:
        super().__init__()
        self.path = path
        self.history = {key: list(values) for key, values in history.items()}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        write_json(self.path, self.history)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping on ``val_loss`` that carries its best value and wait count over a resume."""

    def __init__(self, patience: int, best: float | None, wait: int) -> None:
        super().__init__(monitor="val_loss", patience=patience, verbose=1)
        self._resumed_best = best
        self._resumed_wait = wait

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.best, self.wait = self._resumed_best, self._resumed_wait
