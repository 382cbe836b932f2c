"""Train the (2+1)D ResNet on vidshard shards: the tutorial's ``model.fit``, made reproducible and resumable.

A run directory holds everything a run produces (names below).  Training uses Keras
callbacks only: ``ModelCheckpoint`` keeps the best model by ``val_loss`` as ``model.keras`` and
the latest one (with optimizer state) for ``--resume``, ``CSVLogger`` and a small JSON writer
record the history every epoch, ``EarlyStopping`` stops on ``val_loss`` when asked.  The final
``model.keras`` is always the epoch with the lowest validation loss ("restore best").

Two input paths feed the same ``model.fit``.  With the TensorFlow backend (the default) the
tf.data reader (:mod:`vidshard.reader`) reads the shards and caches decoded clips.  With JAX or
PyTorch (``TrainConfig.backend``; Keras must already run on that backend, see
:mod:`vidshard.models.backend`) the TF-free :class:`~vidshard.numpy_reader.ShardReader` feeds
``fit`` through :class:`ShardSequence`, and TensorFlow is never imported: this module imports it
only on the TensorFlow path.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, ContextManager, Iterator

import keras
import numpy as np

from vidshard import __version__
from vidshard.errors import ShardFormatError, VidshardError
from vidshard.format.info import DatasetInfo, load_info
from vidshard.format.splits import split_files
from vidshard.models.backend import BACKENDS, DEFAULT_BACKEND, tensorflow_kept_out
from vidshard.models.plots import plot_history
from vidshard.models.resnet21d import build_model
from vidshard.numpy_reader import ShardReader

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
    val_split: str = "val"
    backend: str = DEFAULT_BACKEND
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


class ShardSequence(keras.utils.PyDataset):
    """A TF-free :class:`ShardReader` as a ``keras.utils.PyDataset``, for ``model.fit`` on JAX or PyTorch.

    Keras asks a PyDataset for batches by index, while the reader is a stream whose order and
    clips follow from its seed and epoch.  Index 0 starts a pass at the epoch set by
    :meth:`set_epoch` (:class:`ReaderEpoch` passes ``fit``'s epoch), and the following indices
    must come in order, as Keras asks for them from a one-worker PyDataset under
    ``fit(shuffle=False)``.  A pass restarted at index 0 replays the same epoch (Keras reads one
    batch to build its metrics before training starts).  The reader decodes in its own threads,
    so Keras's PyDataset workers stay off.  A shard that cannot be read raises
    :class:`ShardFormatError` naming the split, the file and the record.
    """

    def __init__(self, reader: ShardReader) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.reader = reader
        self.epoch = reader.epoch
        self._batches: Any = None
        self._next = 0

    def __len__(self) -> int:
        return len(self.reader)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass (the next index 0) read ``epoch``."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index == 0:
            self._close()
            self.reader.set_epoch(self.epoch)
            self._batches = iter(self.reader)
        elif self._batches is None or index != self._next:
            raise IndexError(f"{type(self).__name__} is read in order from index 0: asked for batch {index}, "
                             f"the next one is {self._next}")
        try:
            batch = next(self._batches)
        except ShardFormatError as exc:
            self._close()
            raise ShardFormatError(f"reading split {self.reader.split!r}: {exc}") from None
        self._next = index + 1
        return batch

    def on_epoch_end(self) -> None:
        self._close()  # stops the reader's threads

    def _close(self) -> None:
        if self._batches is not None:
            self._batches.close()
            self._batches = None


class ReaderEpoch(keras.callbacks.Callback):
    """Makes ``fit``'s epoch ``e`` read epoch ``e`` of a :class:`ShardSequence` (order and clips).

    Epochs are numbered as ``fit`` numbers them, from ``initial_epoch`` when resuming, so a
    resumed run reads the same data as an uninterrupted one would have.
    """

    def __init__(self, data: ShardSequence) -> None:
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.data.set_epoch(epoch)


def reader_threads() -> int:
    """Decode threads of the TF-free training reader: one per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
        raise VidshardError(f"{run_dir} already holds a run ({taken[0]}); use `resume` or another directory")
    return config, {}


def check_model_fits(model: keras.Model, info: DatasetInfo, data_dir: str) -> None:
    """Refuse a model whose input clip shape or class count differs from the shards'."""
    takes = (*model.input_shape[1:], model.output_shape[-1])
    holds = (*info.clip_shape, info.num_classes)
    if tuple(takes) != holds:
        raise VidshardError(f"the model takes clips {tuple(takes[:4])} with {takes[4]} classes, but {data_dir} "
                            f"holds {holds[:4]} with {holds[4]} classes")


def _cache_for(config: TrainConfig, run_dir: str, split: str) -> bool | str:
    if config.cache == "disk":
        return os.path.join(run_dir, CACHE_DIR, split)
    return config.cache == "memory"


def _tf_data(data_dir: str, run_dir: str, config: TrainConfig, seed: int
             ) -> tuple[Any, Any, Callable[[], ContextManager[None]]]:
    """tf.data train and val datasets, and a context that turns TensorFlow read errors into one line."""
    from vidshard.reader import DATA_ERRORS, data_error, make_dataset  # the only TensorFlow import of training

    train_ds = make_dataset(data_dir, config.train_split, config.batch_size, shuffle=True,
                            shuffle_buffer=config.shuffle_buffer, seed=seed,
                            cache=_cache_for(config, run_dir, config.train_split))
    val_ds = make_dataset(data_dir, config.val_split, config.batch_size, shuffle=False, clips="all",
                          cache=_cache_for(config, run_dir, config.val_split))

    @contextlib.contextmanager
    def data_errors() -> Iterator[None]:
        try:
            yield
        except DATA_ERRORS as exc:
            raise data_error(data_dir, (config.train_split, config.val_split), exc) from None

    return train_ds, val_ds, data_errors


def _tf_free_data(data_dir: str, config: TrainConfig, initial_epoch: int) -> tuple[ShardSequence, ShardSequence]:
    """TF-free train and val sequences; the train reader is seeded with the run's seed, its epoch is fit's."""
    threads = reader_threads()
    train_seq = ShardSequence(ShardReader(data_dir, config.train_split, config.batch_size, shuffle=True,
                                          shuffle_buffer=config.shuffle_buffer, seed=config.seed,
                                          epoch=initial_epoch, num_workers=threads))
    val_seq = ShardSequence(ShardReader(data_dir, config.val_split, config.batch_size, shuffle=False,
                                        clips="all", num_workers=threads))
    return train_seq, val_seq


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
    epochs included when resuming).  ``run_dir`` receives ``model.keras`` (best epoch by
    ``val_loss``), ``checkpoints/last.keras``, ``history.json``, ``history.csv``,
    ``history.png`` and ``config.json``.  A resumed run continues the optimizer state and
    history with the run's stored settings (only :data:`RESUME_MAY_CHANGE` come from
    ``config``).  On TensorFlow its data order is not bit-identical to an uninterrupted run's;
    on JAX and PyTorch epoch ``e`` reads the same order and clips either way.  Keras must run on
    ``config.backend`` in this process (see :mod:`vidshard.models.backend`).
    """
    data_dir, run_dir = os.fspath(data_dir), os.fspath(run_dir)
    info = load_info(data_dir)
    config, previous = _prepare_run_dir(run_dir, config or TrainConfig())
    config = replace(config, cache=config.cache or DEFAULT_CACHE[config.backend])
    if keras.backend.backend() != config.backend:
        raise VidshardError(f"this run trains on {config.backend}, but Keras runs on {keras.backend.backend()} in "
                            f"this process: set KERAS_BACKEND={config.backend} before importing keras "
                            "(vidshard train --backend does this)")
    for split in (config.train_split, config.val_split):
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
        _write_json(os.path.join(run_dir, CONFIG_FILE), {
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
            train_data, val_data, data_errors = _tf_data(data_dir, run_dir, config, data_seed)
        else:
            train_data, val_data = _tf_free_data(data_dir, config, initial_epoch)
            data_errors = contextlib.nullcontext  # ShardSequence raises one-line ShardFormatErrors itself
            data_callbacks.append(ReaderEpoch(train_data))
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


def best_epoch(history: dict[str, list[float]]) -> int | None:
    """1-based epoch with the lowest ``val_loss`` (the one ``model.keras`` holds), or None."""
    losses = history.get("val_loss", [])
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    return min(finite, key=losses.__getitem__) + 1 if finite else None
