"""Train the (2+1)D ResNet on vidshard shards: the tutorial's ``model.fit``, made reproducible and resumable.

A run directory holds everything a run produces (names below).  Training uses Keras
callbacks only: ``ModelCheckpoint`` keeps the best model by ``val_loss`` as ``model.keras`` and
the latest one (with optimizer state) for ``--resume``, ``CSVLogger`` and a small JSON writer
record the history every epoch, ``EarlyStopping`` stops on ``val_loss`` when asked.  The final
``model.keras`` is the epoch with the lowest validation loss ("restore best").  Without a
validation split (``val_split=None``: UCF101's official folds have none) there is no
``val_loss`` to choose by: ``model.keras`` is the last epoch's, and early stopping is refused.

Two input paths feed the same ``model.fit``.  With the TensorFlow backend (the default) the
tf.data reader (:mod:`vidshard.readers.tf_data`) reads the shards and caches decoded clips.  With JAX or
PyTorch (``TrainConfig.backend``; Keras must already run on that backend, see
:mod:`vidshard.models.backend`) the TF-free :class:`~vidshard.readers.numpy_reader.ShardReader` feeds
``fit`` through :class:`~vidshard.models.inputs.ShardSequence`, and TensorFlow is never imported:
:mod:`vidshard.models.inputs` imports it only on the TensorFlow path.

This module holds the options (:class:`TrainConfig`) and the fit loop; the run directory's files
are :mod:`vidshard.models.run_dir`'s, the input paths :mod:`vidshard.models.inputs`', the custom
callbacks :mod:`vidshard.models.callbacks`'.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import shutil
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import keras

from vidshard.version import __version__
from vidshard.augment import parse_augment
from vidshard.errors import VidshardError
from vidshard.format.info import DatasetInfo, load_info
from vidshard.format.splits import split_files
from vidshard.models.backend import BACKENDS, DEFAULT_BACKEND, tensorflow_kept_out
from vidshard.models.callbacks import HistoryFile, ResumableEarlyStopping
from vidshard.models.inputs import ReaderEpoch, tf_data, tf_free_data
from vidshard.models.plots import plot_history
from vidshard.models.resnet21d import build_model
from vidshard.models.run_dir import (CACHE_DIR, CONFIG_FILE, HISTORY_CSV, HISTORY_JSON, HISTORY_PNG, LAST_CHECKPOINT,
                                     MODEL_FILE, best_epoch, best_so_far, prepare_run_dir, write_json)

#: The user-facing names; ``best_epoch`` lives in :mod:`vidshard.models.run_dir` and is kept here
#: for code that imports it from ``vidshard.models.train``.
__all__ = ["TrainConfig", "train", "best_epoch", "compile_model", "check_model_fits", "PRECISION_POLICIES"]

#: ``--mixed-precision`` value -> Keras dtype policy.  bfloat16 needs no loss scaling and runs on
#: CPUs, TPUs and Ampere-or-newer GPUs; float16 gets Keras's automatic loss scaling.
PRECISION_POLICIES = {None: "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
CACHE_MODES = ("memory", "disk", "none")
#: ``cache`` when none is given: the tf.data reader caches decoded clips in memory; the TF-free
#: reader has no cache (it decodes every epoch, in threads that overlap the training step).
DEFAULT_CACHE = {"tensorflow": "memory", "jax": "none", "torch": "none"}


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
    cache: str | None = None  # None: DEFAULT_CACHE[backend]
    shuffle_buffer: int = 1000
    train_split: str = "train"
    val_split: str | None = "val"  # None: no validation; model.keras is then the last epoch's
    backend: str = DEFAULT_BACKEND
    augment: tuple[str, ...] = ()  # train-time augmentations (vidshard.augment); "flip,crop" is parsed too
    verbose: int = 2

    def __post_init__(self) -> None:
        self.augment = parse_augment(self.augment)
        if self.epochs < 1 or self.batch_size < 1:
            raise VidshardError(f"epochs and batch size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not self.learning_rate > 0:
            raise VidshardError(f"learning rate must be > 0, got {self.learning_rate}")
        if self.patience is not None and self.patience < 1:
            raise VidshardError(f"patience must be >= 1, got {self.patience}")
        if self.patience is not None and self.val_split is None:
            raise VidshardError("`patience` stops when val_loss stops falling, and this run has no validation "
                                "split: drop `patience` or name a split with `val_split`")
        if self.mixed_precision not in PRECISION_POLICIES:
            raise VidshardError(f"mixed precision must be bfloat16 or float16, not {self.mixed_precision!r}")
        if self.backend not in BACKENDS:
            raise VidshardError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.cache is not None and self.cache not in CACHE_MODES:
            raise VidshardError(f"cache must be one of {', '.join(CACHE_MODES)}, not {self.cache!r}")
        if self.backend != "tensorflow" and self.cache not in (None, "none"):
            raise VidshardError(f"cache {self.cache!r} needs the tensorflow backend: with {self.backend} the "
                                "TF-free reader decodes every epoch in background threads and keeps no cache")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a ``config.json`` ``train`` entry, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def check_model_fits(model: keras.Model, info: DatasetInfo, data_dir: str) -> None:
    """Refuse a model whose input clip shape or class count differs from the shards'."""
    takes = (*model.input_shape[1:], model.output_shape[-1])
    holds = (*info.clip_shape, info.num_classes)
    if tuple(takes) != holds:
        raise VidshardError(f"the model takes clips {tuple(takes[:4])} with {takes[4]} classes, but {data_dir} "
                            f"holds {holds[:4]} with {holds[4]} classes")


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

    See :func:`_train`.  On JAX and PyTorch, Keras is kept from importing TensorFlow meanwhile
    (:func:`~vidshard.models.backend.tensorflow_kept_out`).
    """
    on_tensorflow = keras.backend.backend() == "tensorflow"
    with contextlib.nullcontext() if on_tensorflow else tensorflow_kept_out():
        return _train(data_dir, run_dir, config)


def _train(data_dir: str | os.PathLike, run_dir: str | os.PathLike, config: TrainConfig | None = None
           ) -> dict[str, list[float]]:
    """Train on ``data_dir``'s train split, validate on its val split, write the run to ``run_dir``.

    Returns the history (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` per epoch, earlier
    epochs included when resuming; no ``val_*`` without a val split).  ``run_dir`` receives
    ``model.keras`` (best epoch by ``val_loss``; the last epoch without a val split),
    ``checkpoints/last.keras``, ``history.json``, ``history.csv``,
    ``history.png`` and ``config.json``.  A resumed run continues the optimizer state and
    history with the run's stored settings (only :data:`~vidshard.models.run_dir.RESUME_MAY_CHANGE` come from
    ``config``).  On TensorFlow its data order is not bit-identical to an uninterrupted run's;
    on JAX and PyTorch epoch ``e`` reads the same order and clips either way.  Keras must run on
    ``config.backend`` in this process (see :mod:`vidshard.models.backend`).
    """
    data_dir, run_dir = os.fspath(data_dir), os.fspath(run_dir)
    info = load_info(data_dir)
    config, previous = prepare_run_dir(run_dir, config or TrainConfig())
    config = replace(config, cache=config.cache or DEFAULT_CACHE[config.backend])
    if keras.backend.backend() != config.backend:
        raise VidshardError(f"this run trains on {config.backend}, but Keras runs on {keras.backend.backend()} in "
                            f"this process: set KERAS_BACKEND={config.backend} before importing keras "
                            "(training with `backend` does this)")
    for split in (config.train_split, config.val_split):
        if split is not None:
            split_files(data_dir, split, info)
    os.makedirs(os.path.join(run_dir, os.path.dirname(LAST_CHECKPOINT)), exist_ok=True)
    initial_epoch = len(previous.get("loss", []))
    if initial_epoch >= config.epochs:
        raise VidshardError(f"{run_dir} has already trained {initial_epoch} epochs; "
                            f"pass `epochs` above {initial_epoch} to train on")
    # A resumed run gets its own seed stream, so it does not replay epoch 1's data order (the tf.data
    # reader's order depends on its seed only; the TF-free reader's on its seed and fit's epoch).
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
            model = build_model(*info.clip_shape[:3], info.num_classes)
            compile_model(model, config.learning_rate)
        write_json(os.path.join(run_dir, CONFIG_FILE), {
            "train": asdict(config),
            "data_dir": os.path.abspath(data_dir),
            "dataset": {"class_names": info.class_names, "n_frames": info.clip.n_frames, "height": info.clip.height,
                        "width": info.clip.width, "clips_per_video": info.clip.clips_per_video,
                        "num_examples": {name: s.num_examples for name, s in info.splits.items()}},
            "model": {"name": model.name, "params": model.count_params()},
            "resumed_at_epoch": initial_epoch if config.resume else None,
            "versions": {"vidshard": __version__, "keras": keras.__version__,
                         config.backend: importlib.import_module(config.backend).__version__,
                         "backend": keras.backend.backend()},
        })
        data_callbacks: list[keras.callbacks.Callback] = []
        if config.backend == "tensorflow":
            train_data, val_data, data_errors = tf_data(
                data_dir, config.train_split, config.val_split, config.batch_size,
                shuffle_buffer=config.shuffle_buffer, seed=data_seed, cache=config.cache, cache_dir=cache_root,
                augment=config.augment)
        else:
            train_data, val_data = tf_free_data(
                data_dir, config.train_split, config.val_split, config.batch_size,
                shuffle_buffer=config.shuffle_buffer, seed=config.seed, initial_epoch=initial_epoch,
                augment=config.augment)
            data_errors = contextlib.nullcontext  # ShardSequence raises one-line ShardFormatErrors itself
            data_callbacks.append(ReaderEpoch(train_data))
        best, wait = best_so_far(previous)
        history_file = HistoryFile(os.path.join(run_dir, HISTORY_JSON), previous)
        validated = config.val_split is not None
        callbacks: list[keras.callbacks.Callback] = [
            # Without validation there is no val_loss to pick an epoch by: model.keras is the last one.
            keras.callbacks.ModelCheckpoint(os.path.join(run_dir, MODEL_FILE), monitor="val_loss",
                                            save_best_only=True, initial_value_threshold=best)
            if validated else keras.callbacks.ModelCheckpoint(os.path.join(run_dir, MODEL_FILE)),
            keras.callbacks.ModelCheckpoint(os.path.join(run_dir, LAST_CHECKPOINT)),
            keras.callbacks.CSVLogger(os.path.join(run_dir, HISTORY_CSV), append=config.resume),
            # After the checkpoints: history.json never lists an epoch whose checkpoint is missing.
            history_file,
        ]
        if config.patience:
            callbacks.append(ResumableEarlyStopping(config.patience, best, wait))
        with data_errors():
            model.fit(train_data, validation_data=val_data, epochs=config.epochs, initial_epoch=initial_epoch,
                      callbacks=data_callbacks + callbacks, verbose=config.verbose,
                      shuffle=False)  # the readers shuffle themselves
    finally:
        keras.mixed_precision.set_global_policy(saved_policy)
        shutil.rmtree(cache_root, ignore_errors=True)
    history = history_file.history
    plot_history(history, os.path.join(run_dir, HISTORY_PNG))
    if not os.path.isfile(os.path.join(run_dir, MODEL_FILE)):
        raise VidshardError(f"no epoch reached a finite val_loss, so {run_dir} has no {MODEL_FILE}; "
                            "try a lower learning rate")
    return history
