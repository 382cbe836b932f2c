"""Train the (2+1)D ResNet on vidshard shards: the tutorial's ``model.fit``, made reproducible and resumable.

A run directory holds everything a run produces (names below).  Training uses Keras
callbacks only: ``ModelCheckpoint`` keeps the best model by ``val_loss`` as ``model.keras`` and
the latest one (with optimizer state) for ``--resume``, ``CSVLogger`` and a small JSON writer
record the history every epoch, ``EarlyStopping`` stops on ``val_loss`` when asked.  The final
``model.keras`` is always the epoch with the lowest validation loss ("restore best").
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import keras
import tensorflow as tf

from vidshard import __version__
from vidshard.errors import ShardFormatError, VidshardError
from vidshard.models.plots import plot_history
from vidshard.models.resnet21d import build_model
from vidshard.reader import DATA_ERRORS, data_error, make_dataset
from vidshard.records import DatasetInfo, load_info

MODEL_FILE = "model.keras"
LAST_CHECKPOINT = os.path.join("checkpoints", "last.keras")
CONFIG_FILE = "config.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
HISTORY_PNG = "history.png"
CACHE_DIR = "cache"

#: What a resumed run may change; everything else is the run's own (from its ``config.json``).
RESUME_MAY_CHANGE = ("epochs", "patience", "cache", "verbose")

#: ``--mixed-precision`` value -> Keras dtype policy.  bfloat16 needs no loss scaling and runs on
#: CPUs, TPUs and Ampere-or-newer GPUs; float16 gets Keras's automatic loss scaling.
PRECISION_POLICIES = {None: "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
CACHE_MODES = ("memory", "disk", "none")


@dataclass
class TrainConfig:
    """Training options; defaults are the tutorial's (50 epochs, batch 8, Adam at 1e-4)."""

    epochs: int = 50
    batch_size: int = 8
    learning_rate: float = 1e-4
    patience: int | None = None
    mixed_precision: str | None = None
    seed: int = 0
    resume: bool = False
    cache: str = "memory"
    shuffle_buffer: int = 1000
    train_split: str = "train"
    val_split: str = "val"
    backend: str = "tensorflow"
    verbose: int = 2

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise VidshardError(f"epochs and batch size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not self.learning_rate > 0:
            raise VidshardError(f"learning rate must be > 0, got {self.learning_rate}")
        if self.patience is not None and self.patience < 1:
            raise VidshardError(f"patience must be >= 1, got {self.patience}")
        if self.mixed_precision not in PRECISION_POLICIES:
            raise VidshardError(f"mixed precision must be bfloat16 or float16, not {self.mixed_precision!r}")
        if self.cache not in CACHE_MODES:
            raise VidshardError(f"cache must be one of {', '.join(CACHE_MODES)}, not {self.cache!r}")
        if self.backend != "tensorflow":
            raise VidshardError(f"backend {self.backend!r} is not supported yet; train with tensorflow")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a ``config.json`` ``train`` entry, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class _HistoryFile(keras.callbacks.Callback):
    """Writes the whole history (earlier runs' epochs included) to JSON after every epoch."""

    def __init__(self, path: str, history: dict[str, list[float]]) -> None:
        super().__init__()
        self.path = path
        self.history = {key: list(values) for key, values in history.items()}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        _write_json(self.path, self.history)


class _ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping on ``val_loss`` that carries its best value and wait count over a resume."""

    def __init__(self, patience: int, best: float | None, wait: int) -> None:
        super().__init__(monitor="val_loss", patience=patience, verbose=1)
        self._resumed_best = best
        self._resumed_wait = wait

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.best, self.wait = self._resumed_best, self._resumed_wait


def _write_json(path: str, data: Any) -> None:
    """Write JSON atomically, so an interrupted run never leaves a half-written file."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _best_so_far(history: dict[str, list[float]]) -> tuple[float | None, int]:
    """Lowest ``val_loss`` of earlier epochs and the number of epochs since it (0, 0 when none)."""
    epoch = best_epoch(history)
    if epoch is None:
        return None, 0
    losses = history["val_loss"]
    return losses[epoch - 1], len(losses) - epoch


def _prepare_run_dir(run_dir: str, config: TrainConfig) -> tuple[TrainConfig, dict[str, list[float]]]:
    """Check ``run_dir`` for a fresh or a resumed run; return the config to use and the history so far.

    A resumed run keeps its stored settings (learning rate, batch size, seed, ...) and takes
    only :data:`RESUME_MAY_CHANGE` from ``config``.
    """
    if config.resume:
        for name in (LAST_CHECKPOINT, HISTORY_JSON, CONFIG_FILE):
            if not os.path.isfile(os.path.join(run_dir, name)):
                raise VidshardError(f"cannot resume: {run_dir} has no {name} (was a run started there?)")
        stored = TrainConfig.from_dict(_read_json(os.path.join(run_dir, CONFIG_FILE))["train"])
        config = replace(stored, resume=True, **{name: getattr(config, name) for name in RESUME_MAY_CHANGE})
        return config, _read_json(os.path.join(run_dir, HISTORY_JSON))
    taken = [n for n in (MODEL_FILE, LAST_CHECKPOINT, HISTORY_JSON) if os.path.exists(os.path.join(run_dir, n))]
    if taken:
        raise VidshardError(f"{run_dir} already holds a run ({taken[0]}); use --resume or another directory")
    return config, {}


def check_model_fits(model: keras.Model, info: DatasetInfo, data_dir: str) -> None:
    """Refuse a model whose input clip shape or class count differs from the shards'."""
    takes = (*model.input_shape[1:], model.output_shape[-1])
    holds = (info.n_frames, info.height, info.width, 3, info.num_classes)
    if tuple(takes) != holds:
        raise VidshardError(f"the model takes clips {tuple(takes[:4])} with {takes[4]} classes, but {data_dir} "
                            f"holds {holds[:4]} with {holds[4]} classes")


def _cache_for(config: TrainConfig, run_dir: str, split: str) -> bool | str:
    if config.cache == "disk":
        return os.path.join(run_dir, CACHE_DIR, split)
    return config.cache == "memory"


def compile_model(model: keras.Model, learning_rate: float) -> None:
    """The tutorial's compile: Adam, sparse categorical cross-entropy on logits, accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def train(data_dir: str | os.PathLike, run_dir: str | os.PathLike, config: TrainConfig | None = None
          ) -> dict[str, list[float]]:
    """Train on ``data_dir``'s train split, validate on its val split, write the run to ``run_dir``.

    Returns the history (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` per epoch, earlier
    epochs included when resuming).  ``run_dir`` receives ``model.keras`` (best epoch by
    ``val_loss``), ``checkpoints/last.keras``, ``history.json``, ``history.csv``,
    ``history.png`` and ``config.json``.  A resumed run continues the optimizer state and
    history with the run's stored settings (only :data:`RESUME_MAY_CHANGE` come from
    ``config``), but its data order is not bit-identical to an uninterrupted run's.
    """
    data_dir, run_dir = os.fspath(data_dir), os.fspath(run_dir)
    info = load_info(data_dir)
    config, previous = _prepare_run_dir(run_dir, config or TrainConfig())
    for split in (config.train_split, config.val_split):
        if split not in info.splits:
            raise ShardFormatError(f"{data_dir} has no {split!r} split (it has {', '.join(sorted(info.splits))})")
    os.makedirs(os.path.join(run_dir, os.path.dirname(LAST_CHECKPOINT)), exist_ok=True)
    initial_epoch = len(previous.get("loss", []))
    if initial_epoch >= config.epochs:
        raise VidshardError(f"{run_dir} has already trained {initial_epoch} epochs; "
                            f"pass --epochs above {initial_epoch} to train on")
    # A resumed run gets its own seed stream, so it does not replay epoch 1's data order.
    keras.utils.set_random_seed(config.seed + initial_epoch)
    data_seed = config.seed + initial_epoch
    cache_root = os.path.join(run_dir, CACHE_DIR)
    shutil.rmtree(cache_root, ignore_errors=True)  # a stale on-disk cache would be reused silently

    saved_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[config.mixed_precision])
    try:
        if config.resume:
            model = keras.models.load_model(os.path.join(run_dir, LAST_CHECKPOINT))
            check_model_fits(model, info, data_dir)
        else:
            model = build_model(info.n_frames, info.height, info.width, info.num_classes)
            compile_model(model, config.learning_rate)
        _write_json(os.path.join(run_dir, CONFIG_FILE), {
            "train": asdict(config),
            "data_dir": os.path.abspath(data_dir),
            "dataset": {"class_names": info.class_names, "n_frames": info.n_frames, "height": info.height,
                        "width": info.width, "clips_per_video": info.clips_per_video,
                        "num_examples": {name: s.num_examples for name, s in info.splits.items()}},
            "model": {"name": model.name, "params": model.count_params()},
            "resumed_at_epoch": initial_epoch if config.resume else None,
            "versions": {"vidshard": __version__, "keras": keras.__version__, "tensorflow": tf.__version__,
                         "backend": keras.backend.backend()},
        })
        train_ds = make_dataset(data_dir, config.train_split, config.batch_size, shuffle=True,
                                shuffle_buffer=config.shuffle_buffer, seed=data_seed,
                                cache=_cache_for(config, run_dir, config.train_split))
        val_ds = make_dataset(data_dir, config.val_split, config.batch_size, shuffle=False, clips="all",
                              cache=_cache_for(config, run_dir, config.val_split))
        best, wait = _best_so_far(previous)
        history_file = _HistoryFile(os.path.join(run_dir, HISTORY_JSON), previous)
        callbacks: list[keras.callbacks.Callback] = [
            keras.callbacks.ModelCheckpoint(os.path.join(run_dir, MODEL_FILE), monitor="val_loss",
                                            save_best_only=True, initial_value_threshold=best),
            keras.callbacks.ModelCheckpoint(os.path.join(run_dir, LAST_CHECKPOINT)),
            keras.callbacks.CSVLogger(os.path.join(run_dir, HISTORY_CSV), append=config.resume),
            # After the checkpoints: history.json never lists an epoch whose checkpoint is missing.
            history_file,
        ]
        if config.patience:
            callbacks.append(_ResumableEarlyStopping(config.patience, best, wait))
        try:
            model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, initial_epoch=initial_epoch,
                      callbacks=callbacks, verbose=config.verbose,
                      shuffle=False)  # the dataset shuffles itself
        except DATA_ERRORS as exc:
            raise data_error(data_dir, (config.train_split, config.val_split), exc) from None
    finally:
        keras.mixed_precision.set_global_policy(saved_policy)
        shutil.rmtree(cache_root, ignore_errors=True)
    history = history_file.history
    plot_history(history, os.path.join(run_dir, HISTORY_PNG))
    if not os.path.isfile(os.path.join(run_dir, MODEL_FILE)):
        raise VidshardError(f"no epoch reached a finite val_loss, so {run_dir} has no {MODEL_FILE}; "
                            "try a lower learning rate")
    return history


def best_epoch(history: dict[str, list[float]]) -> int | None:
    """1-based epoch with the lowest ``val_loss`` (the one ``model.keras`` holds), or None."""
    losses = history.get("val_loss", [])
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    return min(finite, key=losses.__getitem__) + 1 if finite else None
