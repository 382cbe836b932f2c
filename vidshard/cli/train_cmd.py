"""``vidshard train DATA_DIR RUN_DIR``: train the (2+1)D ResNet on shards (the tutorial's ``model.fit``).

Keras (and TensorFlow, on the default backend) is imported when the command runs, not when the
``vidshard`` group loads: other commands start quickly, and ``--backend`` can still choose
Keras's backend, which is fixed when Keras is first imported (see :mod:`vidshard.models.backend`).
"""
from __future__ import annotations

import os

import click

from vidshard.augment import AUGMENTATIONS, CROP_AREA, parse_augment
from vidshard.cli.interrupts import Interrupted, signal_name
from vidshard.cli_params import EXISTING_DIR
from vidshard.errors import VidshardError
from vidshard.models.backend import BACKENDS, DEFAULT_BACKEND, run_backend, use_backend


class _Augmentations(click.ParamType):
    """``--augment flip,crop``: comma-separated names; an unknown one is a usage error (exit 2)."""

    name = ",".join(AUGMENTATIONS)

    def convert(self, value, param, ctx) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_augment(value)
        except VidshardError as exc:
            self.fail(str(exc), param, ctx)


@click.command("train")
@click.argument("data_dir", type=EXISTING_DIR)
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--epochs", type=click.IntRange(min=1), default=50, show_default=True,
              help="Epochs to train (in total, when resuming).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Clips per training step (and per validation batch).")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True,
              help="Adam learning rate.")
@click.option("--patience", type=click.IntRange(min=1), default=None,
              help="Stop after this many epochs without a lower val_loss (default: never, as the tutorial).")
@click.option("--mixed-precision", is_flag=True, help="Compute in 16-bit floats, keeping float32 weights.")
@click.option("--mixed-dtype", type=click.Choice(["bfloat16", "float16"]), default="bfloat16", show_default=True,
              help="16-bit type of --mixed-precision: bfloat16 (CPUs, TPUs, Ampere+ GPUs) or float16 (older GPUs, "
                   "with loss scaling).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds weights, shuffling and clip choice.")
@click.option("--resume", is_flag=True,
              help="Continue RUN_DIR's run from its last epoch, with its optimizer state, history and settings.")
@click.option("--cache", type=click.Choice(["memory", "disk", "none"]), default=None,
              help="Keep decoded uint8 clips in memory, in RUN_DIR/cache (removed after training), or nowhere. "
                   "[default: memory; tensorflow only: the TF-free reader of jax and torch keeps no cache]")
@click.option("--shuffle-buffer", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Examples in the train split's shuffle buffer, every epoch: the larger, the closer to a full "
                   "shuffle (both readers).")
@click.option("--val-split", default="val", show_default=True, metavar="SPLIT|none",
              help="Split that validates every epoch; model.keras is its lowest-val_loss epoch. none: no "
                   "validation, model.keras is the last epoch's (also the default when DATA_DIR has no val split, "
                   "as UCF101's official folds).")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Keras backend. tensorflow reads the shards with tf.data; jax and torch with the TF-free "
                   f"reader, without importing TensorFlow. Overrides KERAS_BACKEND. [default: {DEFAULT_BACKEND}; "
                   "with --resume the run's own]")
@click.option("--augment", type=_Augmentations(), default="",
              help="Train-time augmentation of the train split, after the cache, seeded: crop (scale jitter: "
                   f"a box of {CROP_AREA[0]:.0%}-{CROP_AREA[1]:.0%} of the frame's area, resized back) and/or "
                   "flip (left-right, half the clips). [default: none]")
@click.pass_context
def train_command(ctx: click.Context, data_dir: str, run_dir: str, epochs: int, batch_size: int, learning_rate: float,
                  patience: int | None, mixed_precision: bool, mixed_dtype: str, seed: int, resume: bool,
                  cache: str | None, shuffle_buffer: int, val_split: str, backend: str | None,
                  augment: tuple[str, ...]) -> None:
    """Train on DATA_DIR's train split, validating on its val split; write the run to RUN_DIR.

    RUN_DIR receives model.keras (the epoch with the lowest val_loss; without validation, the last
    epoch), checkpoints/last.keras, history.json, history.csv, history.png and config.json.
    """
    if resume:
        _refuse_changed_settings(ctx)
        backend = run_backend(run_dir)
    val = None if resume else _validation(ctx, data_dir, val_split, patience)
    use_backend(backend or DEFAULT_BACKEND)  # before anything imports Keras
    from vidshard.models.run_dir import HISTORY_PNG, MODEL_FILE, best_epoch
    from vidshard.models.train import TrainConfig, train

    config = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, patience=patience,
                         mixed_precision=mixed_dtype if mixed_precision else None, seed=seed, resume=resume,
                         cache=cache, shuffle_buffer=shuffle_buffer, val_split=val,
                         backend=backend or DEFAULT_BACKEND, augment=augment, verbose=1 if _interactive() else 2)
    try:
        history = train(data_dir, run_dir, config)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (vidshard.cli.interrupts)
        raise Interrupted(_interrupted(signal_name(exc), run_dir), signal_name(exc)) from None
    click.echo(_trained_line(history, best_epoch(history)))
    click.echo(f"model:   {os.path.join(run_dir, MODEL_FILE)}")
    click.echo(f"history: {os.path.join(run_dir, HISTORY_PNG)}")
    click.echo(f"next:    vidshard evaluate {run_dir}")


def _validation(ctx: click.Context, data_dir: str, val_split: str, patience: int | None) -> str | None:
    """The split that validates a fresh run, or None; says so when there is none (stderr).

    ``--val-split none`` turns validation off; without ``--val-split``, an output that has no val
    split (UCF101's official folds) trains without validation rather than stopping.
    """
    from click.core import ParameterSource

    from vidshard.format.info import load_info

    if val_split.lower() == "none":
        if patience is not None:
            raise click.UsageError("--patience stops when val_loss stops falling; it needs validation, which "
                                   "--val-split none turns off", ctx)
        click.echo("Training without validation (--val-split none): model.keras will be the last epoch's.", err=True)
        return None
    if ctx.get_parameter_source("val_split") == ParameterSource.DEFAULT and val_split not in load_info(data_dir).splits:
        if patience is not None:
            raise VidshardError(f"{data_dir} has no {val_split} split to validate on, and --patience stops when "
                                "val_loss stops falling: drop --patience, or name a split with --val-split")
        click.echo(f"{data_dir} has no {val_split} split: training without validation, model.keras will be the "
                   "last epoch's (--val-split SPLIT validates on another split).", err=True)
        return None
    return val_split


def _trained_line(history: dict[str, list[float]], best: int | None) -> str:
    """What training did, in one line: epochs, and which epoch model.keras holds with its figures."""
    epochs = len(history["loss"])
    done = f"trained {epochs} epoch{'' if epochs == 1 else 's'}"
    if "val_loss" not in history:
        return (f"{done} without validation; model.keras is the last epoch's (loss {history['loss'][-1]:.4f}, "
                f"accuracy {history['accuracy'][-1]:.3f})")
    assert best is not None  # train() refuses a run without a finite val_loss
    return (f"{done}; best val_loss {history['val_loss'][best - 1]:.4f} "
            f"(val_accuracy {history['val_accuracy'][best - 1]:.3f}) at epoch {best}")


def _interrupted(name: str, run_dir: str) -> str:
    """The one line of an interrupted run: how many epochs RUN_DIR keeps and how ``--resume`` continues."""
    from vidshard.models.run_dir import HISTORY_JSON, LAST_CHECKPOINT, read_json

    history = os.path.join(run_dir, HISTORY_JSON)
    epochs = len(read_json(history).get("loss", [])) if os.path.isfile(history) else 0
    if not epochs or not os.path.isfile(os.path.join(run_dir, LAST_CHECKPOINT)):
        return f"Interrupted ({name}) before the first epoch ended: nothing to resume; rerun the same command"
    return (f"Interrupted ({name}): {run_dir} keeps {epochs} finished epoch(s) ({LAST_CHECKPOINT}); rerun the "
            f"same command with --resume to continue from epoch {epochs + 1}")


def _refuse_changed_settings(ctx: click.Context) -> None:
    """A resumed run keeps its own settings: say so rather than ignore an option the user typed."""
    from click.core import ParameterSource

    fixed = [name for name in ("batch_size", "learning_rate", "mixed_precision", "mixed_dtype", "seed",
                               "shuffle_buffer", "val_split", "backend", "augment")
             if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
    if fixed:
        options = ", ".join("--" + name.replace("_", "-") for name in fixed)
        raise click.UsageError(f"{options} cannot change when resuming: the run keeps the settings in its "
                               "config.json (only --epochs, --patience and --cache apply)")


def _interactive() -> bool:
    """Progress bars on a terminal, one line per epoch in logs."""
    return click.get_text_stream("stdout").isatty()
