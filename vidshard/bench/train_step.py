"""``vidshard bench-train``: can the TF-free reader keep a training step fed?

For each batch size and dtype it times the same Keras training step (``model.train_on_batch``
of the (2+1)D ResNet built for the shards' clip shape, compiled as ``vidshard train`` compiles
it) fed two ways, and reports clips per second of each and their ratio:

* **synthetic**: one batch of random uint8 clips and labels, put on the device once and fed
  again and again, so the step never waits for input: the step's own rate;
* **from shards**: batches of the split, read, shuffled and decoded by
  :class:`~vidshard.readers.numpy_reader.ShardReader` in its decode threads while the step runs, and
  put on the device ahead of use by :func:`~vidshard.bench.prefetch.prefetch_to_device`, epoch
  after epoch.

A ratio near 1 means the input pipeline hides behind the step (the target on a GPU is 0.9).
The reader alone (decoding, no training) is timed too, to tell a slow reader from one that
competes with the step for the CPU.

Method: one untimed warm-up (``--warmup`` steps on the synthetic batch) compiles the step; then
``--rounds`` rounds alternate the two feeds, ``--steps`` timed steps each; every round on shards
starts a fresh pass of the reader and trains ``--warmup`` untimed steps first, so its pipeline
is full (as in the middle of an epoch) when the clock starts.  Passes follow each other without
a gap (:func:`endless_batches`), so the figure is the steady state inside an epoch, whatever the
split's size; ``vidshard train`` pays one pass start (a shuffle-buffer fill and a first batch)
per epoch on top.  Each ``train_on_batch`` returns
the step's loss as a host number, so every timed step has finished on the device.  Batches of a
fixed size only (``drop_remainder``): a short batch would recompile the step.

It runs where neither TensorFlow nor Beam is installed (the GPU machine): it imports neither,
imports Keras only after choosing the backend (:mod:`vidshard.models.backend`), keeps Keras from
importing TensorFlow on JAX and PyTorch, and runs as ``python -m vidshard.bench.train_step``
without the ``vidshard`` command, whose other sub-commands need packages that machine lacks.  So
the click command :func:`bench_train_command` is defined here, and ``vidshard bench-train`` is
this same command; its ``--backend`` defaults to ``vidshard train``'s.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import itertools
import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import click
import numpy as np

from vidshard.version import __version__
from vidshard.cli_params import EXISTING_DIR
from vidshard.errors import VidshardError
from vidshard.format.splits import split_files
from vidshard.models.backend import BACKENDS, DEFAULT_BACKEND, tensorflow_kept_out, use_backend
from vidshard.bench.prefetch import prefetch_to_device
from vidshard.readers.numpy_reader import ShardReader

#: One batch of a ShardReader: ``(frames, labels)``.
Batch = tuple[Any, Any]

#: ``--dtypes`` name -> ``TrainConfig.mixed_precision`` (the policies ``vidshard train`` uses).
DTYPES: dict[str, str | None] = {"float32": None, "bfloat16": "bfloat16", "float16": "float16"}
#: From shards at >= 90% of the synthetic rate: the input pipeline costs the step at most 10%.
TARGET_RATIO = 0.9


@dataclass(frozen=True)
class BenchTrainConfig:
    """What to measure; see the module docstring for the method."""

    data_dir: str
    backend: str = DEFAULT_BACKEND
    split: str = "train"
    batch_sizes: tuple[int, ...] = (8, 32)
    dtypes: tuple[str, ...] = ("float32", "bfloat16")
    steps: int = 20
    warmup: int = 3
    rounds: int = 2
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    prefetch: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise VidshardError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        unknown = [d for d in self.dtypes if d not in DTYPES]
        if unknown or not self.dtypes:
            raise VidshardError(f"dtypes must be among {', '.join(DTYPES)}, got {', '.join(self.dtypes) or 'none'}")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise VidshardError(f"batch sizes must be >= 1, got {self.batch_sizes}")
        if min(self.steps, self.warmup, self.rounds, self.prefetch) < 1 or self.workers < 0:
            raise VidshardError("steps, warmup, rounds and prefetch must be >= 1 and workers >= 0")


@dataclass
class Row:
    """One batch size and dtype: clips/s of each feed (all rounds together, and per round)."""

    batch_size: int
    dtype: str
    synthetic: float
    shards: float
    ratio: float
    reader_alone: float
    target_met: bool
    synthetic_rounds: list[float]
    shards_rounds: list[float]
    timed_steps: int  # per feed, all rounds together


def endless_batches(reader: ShardReader) -> Iterator[Batch]:
    """The reader's batches pass after pass (each pass is the reader's next epoch), without end.

    The next pass is opened in a background thread as soon as the current one starts, so it has
    filled its shuffle buffer and decoded its first batches by the time it is needed: no stall
    at pass ends (as tf.data's ``repeat``), whatever the split's size.  Passes are opened one at a
    time, in order, so their epochs are those of successive ``iter(reader)`` calls.  Closing
    this generator closes both open passes, which stops their threads.
    """
    if len(reader) == 0:
        raise ValueError(f"split {reader.split!r} holds no full batch of {reader.batch_size}")

    def open_pass() -> tuple[Iterator[Batch], Batch]:
        batches = iter(reader)
        return batches, next(batches)

    with ThreadPoolExecutor(1, thread_name_prefix="vidshard-next-pass") as opener:
        upcoming = opener.submit(open_pass)
        try:
            while True:
                batches, first = upcoming.result()
                upcoming = opener.submit(open_pass)
                try:
                    yield first
                    yield from batches
                finally:
                    batches.close()
        finally:
            if upcoming.exception() is None:
                upcoming.result()[0].close()


def _clips_per_second(clips: int, seconds: float) -> float:
    return clips / seconds if seconds > 0 else float("inf")


def _time_steps(model: Any, batches: Iterator[Any], steps: int) -> float:
    """Seconds for ``steps`` training steps; ``train_on_batch`` returns host floats, so each step is done."""
    start = time.perf_counter()
    for _ in range(steps):
        x, y = next(batches)
        model.train_on_batch(x, y)
    return time.perf_counter() - start


def _time_shard_round(model: Any, reader: ShardReader, put: Callable[[Batch], Any], config: BenchTrainConfig
                      ) -> float:
    """One round on shards: a fresh pass, ``warmup`` untimed steps to fill the pipeline, then the timed ones."""
    source = endless_batches(reader)
    stream = prefetch_to_device(source, put, size=2)
    try:
        for _ in range(config.warmup):
            model.train_on_batch(*next(stream))
        return _time_steps(model, stream, config.steps)
    finally:
        stream.close()
        source.close()


def _time_reader(reader: ShardReader, config: BenchTrainConfig) -> float:
    """Seconds for the reader alone to deliver ``steps`` batches after ``warmup`` untimed ones."""
    source = endless_batches(reader)
    try:
        for _ in range(config.warmup):
            next(source)
        start = time.perf_counter()
        for _ in range(config.steps):
            next(source)
        return time.perf_counter() - start
    finally:
        source.close()


def measure(config: BenchTrainConfig, batch_size: int, dtype: str) -> Row:
    """Time one batch size and dtype (Keras must already run on ``config.backend``)."""
    import keras

    from vidshard.models.resnet21d import build_model
    from vidshard.models.train import PRECISION_POLICIES, compile_model

    reader = ShardReader(config.data_dir, config.split, batch_size, shuffle=True, seed=config.seed,
                         num_workers=config.workers, prefetch=config.prefetch, drop_remainder=True)
    if reader.num_examples < batch_size:
        raise VidshardError(f"split {config.split!r} of {config.data_dir} holds {reader.num_examples} clips, "
                            f"fewer than one batch of {batch_size}")
    info = reader.info

    put: Callable[[Batch], Any]
    if config.backend == "jax":
        import jax

        put = jax.device_put  # returns before the copy is done: copies overlap the running step
    else:
        def put(batch: Batch) -> tuple[Any, Any]:
            """Onto the backend's default device (the GPU when there is one)."""
            return keras.ops.convert_to_tensor(batch[0]), keras.ops.convert_to_tensor(batch[1])

    rng = np.random.default_rng(config.seed)
    synthetic = put((rng.integers(0, 256, size=(batch_size, *reader.frame_shape), dtype=np.uint8),
                     rng.integers(0, info.num_classes, size=batch_size, dtype=np.int64)))

    saved_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[DTYPES[dtype]])
    try:
        model = build_model(*info.clip_shape[:3], info.num_classes)
        compile_model(model, learning_rate=1e-4)
        for _ in range(config.warmup):  # compiles the step
            model.train_on_batch(*synthetic)
        synthetic_times, shard_times = [], []
        for _ in range(config.rounds):
            synthetic_times.append(_time_steps(model, itertools.repeat(synthetic), config.steps))
            shard_times.append(_time_shard_round(model, reader, put, config))
    finally:
        keras.mixed_precision.set_global_policy(saved_policy)
    del model
    keras.backend.clear_session()
    gc.collect()
    reader_time = _time_reader(reader, config)

    clips = config.steps * batch_size
    synthetic_rate = _clips_per_second(clips * config.rounds, sum(synthetic_times))
    shard_rate = _clips_per_second(clips * config.rounds, sum(shard_times))
    ratio = shard_rate / synthetic_rate
    return Row(batch_size=batch_size, dtype=dtype, synthetic=synthetic_rate, shards=shard_rate, ratio=ratio,
               reader_alone=_clips_per_second(clips, reader_time), target_met=ratio >= TARGET_RATIO,
               synthetic_rounds=[_clips_per_second(clips, t) for t in synthetic_times],
               shards_rounds=[_clips_per_second(clips, t) for t in shard_times],
               timed_steps=config.steps * config.rounds)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _device(backend: str) -> str:
    """The accelerator the backend computes on, in words ("cpu" when there is none)."""
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}: {device.device_kind}"
    if backend == "torch":
        import torch

        return f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return ", ".join(g.name for g in gpus) if gpus else "cpu"


def run(config: BenchTrainConfig, progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Measure every batch size and dtype of ``config``; return the result that ``--json`` writes.

    Chooses Keras's backend first, so Keras must not be imported yet in this process, or already
    run on ``config.backend``.
    """
    use_backend(config.backend)
    info, _ = split_files(config.data_dir, config.split)
    guard = contextlib.nullcontext() if config.backend == "tensorflow" else tensorflow_kept_out()
    with guard:
        import keras

        rows = []
        for dtype in config.dtypes:
            for batch_size in config.batch_sizes:
                progress(f"batch {batch_size}, {dtype} ...")
                row = measure(config, batch_size, dtype)
                progress(f"batch {batch_size}, {dtype}: synthetic {row.synthetic:.1f} clips/s, from shards "
                         f"{row.shards:.1f} clips/s ({row.ratio:.0%}), reader alone {row.reader_alone:.1f} clips/s")
                rows.append(row)
        device = _device(config.backend)
        versions = {"vidshard": __version__, "keras": keras.__version__,
                    config.backend: importlib.import_module(config.backend).__version__,
                    "numpy": np.__version__, "python": platform.python_version()}
    return {
        "config": asdict(config),
        "target_ratio": TARGET_RATIO,
        "data": {"split": config.split, "clips": info.splits[config.split].num_examples,
                 "clip_shape": list(info.clip_shape), "classes": info.num_classes,
                 "encoding": info.encoding},
        "machine": {"cpu": _cpu_model(), "cpu_count": os.cpu_count(),
                    "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                    "device": device, "platform": platform.platform()},
        "versions": versions,
        "rows": [asdict(row) for row in rows],
    }


def format_table(result: dict[str, Any]) -> str:
    """The result as a Markdown table, one line per batch size and dtype."""
    lines = ["| backend | batch | dtype | synthetic clips/s | from shards clips/s | shards / synthetic "
             "| reader alone clips/s | target met |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |"]
    backend = result["config"]["backend"]
    for row in result["rows"]:
        lines.append(f"| {backend} | {row['batch_size']} | {row['dtype']} | {row['synthetic']:.1f} "
                     f"| {row['shards']:.1f} | {row['ratio']:.0%} | {row['reader_alone']:.1f} "
                     f"| {'yes' if row['target_met'] else 'no'} |")
    return "\n".join(lines)


def _int_list(_ctx: click.Context, _param: click.Parameter, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of whole numbers") from None
    if min(values) < 1:
        raise click.BadParameter(f"{text!r}: every batch size must be at least 1")
    return values


def _dtype_list(_ctx: click.Context, _param: click.Parameter, text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in DTYPES]
    if unknown or not names:
        raise click.BadParameter(f"{text!r}: choose among {', '.join(DTYPES)}, comma-separated")
    return names


@click.command("bench-train", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("data_dir", type=EXISTING_DIR)
@click.option("--backend", type=click.Choice(BACKENDS), default=DEFAULT_BACKEND, show_default=True,
              help="Keras backend, as vidshard train's --backend; jax and torch import no TensorFlow.")
@click.option("--split", default="train", show_default=True, help="Split to read.")
@click.option("--batch-sizes", default="8,32", show_default=True, metavar="N,N", callback=_int_list,
              help="Batch sizes to time, one table row each.")
@click.option("--dtypes", default="float32,bfloat16", show_default=True, metavar="D,D", callback=_dtype_list,
              help=f"Among {', '.join(DTYPES)}; 16-bit types use Keras mixed precision, as vidshard train "
                   "--mixed-precision.")
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True,
              help="Timed steps per feed and round.")
@click.option("--warmup", type=click.IntRange(min=1), default=3, show_default=True,
              help="Untimed steps before timing, also at the start of every round on shards.")
@click.option("--rounds", type=click.IntRange(min=1), default=2, show_default=True,
              help="Rounds alternating synthetic batches and shards.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Reader decode threads. [default: the CPU count]")
@click.option("--prefetch", type=click.IntRange(min=1), default=4, show_default=True, help="Batches decoded ahead.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the synthetic batch and the shuffling.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Also write the result, with machine and versions, as JSON.")
def bench_train_command(data_dir: str, backend: str, split: str, batch_sizes: tuple[int, ...], dtypes: tuple[str, ...],
                        steps: int, warmup: int, rounds: int, workers: int | None, prefetch: int, seed: int,
                        json_path: str | None) -> None:
    """Clips/s of a training step fed from DATA_DIR's shards by the TF-free reader versus the same step fed a
    synthetic batch already on the device; prints a Markdown table (see docs/tf-free.md)."""
    try:
        config = BenchTrainConfig(data_dir=data_dir, backend=backend, split=split, batch_sizes=batch_sizes,
                                  dtypes=dtypes, steps=steps, warmup=warmup, rounds=rounds, prefetch=prefetch,
                                  seed=seed, **({} if workers is None else {"workers": workers}))
        result = run(config, progress=lambda line: click.echo(line, err=True))
    except VidshardError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_table(result))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    bench_train_command(prog_name="python -m vidshard.bench.train_step")
