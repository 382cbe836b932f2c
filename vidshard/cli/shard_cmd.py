"""``vidshard shard``: decode a video dataset once, with Apache Beam, into TFRecord (or ArrayRecord) shards.

Every option is checked before the source is opened (a bad value is click's usage error, exit
status 2, as in every command), the selection is checked against the listing before any video is read, and only
then is an existing output removed (with ``--overwrite``) and the pipeline started.
"""
from __future__ import annotations

import importlib.util
import math
import sys

import click

from vidshard.catalog import SplitPlan, SplitRequest
from vidshard.cli.quality_options import audit_from_options, audit_options
from vidshard.cli.selection import catalog_options, check_split_options, selection_from_options, selection_options
from vidshard.cli.wording import bad_value, cli_wording
from vidshard.errors import VidshardError
from vidshard.format.file_adapters import FILE_FORMATS
from vidshard.format.schema import ENCODINGS
from vidshard.format.tfrecord import COMPRESSIONS
from vidshard.sampling import DRAWS, SAMPLINGS, ClipSpec, EncodeSettings
from vidshard.sources import DEFAULT_MAX_MEMBER_BYTES

_EPILOG = """Any other option goes to Apache Beam unchanged, e.g. --runner DataflowRunner --project P
--region R --temp_location gs://B/tmp --setup_file ./setup.py, or --direct_num_workers 4.
Put Beam options after SOURCE and DATA_DIR. An option that neither vidshard nor Beam's Python
SDK defines is refused; options that only a runner's job server knows (Flink, Spark) go last,
after a lone --, and are passed on unchecked. Without --runner: DirectRunner, multi_processing,
one worker per core (500 videos or fewer: threads of this process). See docs/runners.md."""
#: ``ctx.meta`` key of the words after a lone ``--``: Beam options passed on unchecked.
_UNCHECKED = "vidshard.shard.unchecked_beam_args"


class _ShardCommand(click.Command):
    """Sets aside everything after a lone ``--`` before click parses the rest (click would drop the ``--``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            args, ctx.meta[_UNCHECKED] = args[:cut], args[cut + 1:]
        return super().parse_args(ctx, args)


def _checked_beam_args(ctx: click.Context) -> list[str]:
    """The Beam options of the command line, checked (see :func:`~vidshard.pipelines.options.check_beam_args`).

    An unknown option or a stray word is a usage error as click reports its own: exit status 2
    with a did-you-mean, the same in every vidshard command; so is a bad value of a Beam option.
    """
    from vidshard.errors import CommandLineError
    from vidshard.pipelines.options import check_beam_args

    unchecked = ctx.meta.get(_UNCHECKED, [])
    try:
        check_beam_args(ctx.args, [name for param in ctx.command.params for name in param.opts], unchecked)
    except CommandLineError as exc:
        if exc.option:
            raise click.NoSuchOption(exc.option, possibilities=exc.possibilities, ctx=ctx) from None
        raise click.UsageError(str(exc), ctx=ctx) from None
    except VidshardError as exc:
        raise bad_value(str(exc), ctx) from None
    return [*ctx.args, *unchecked]


def _positive_number(option: str, value: str | float | None) -> float | None:
    """A finite number above 0 (``--fps``, ``--clip-seconds``); else click's usage error naming ``option``."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number", param_hint=f"'{option}'") from None
    if not math.isfinite(number) or number <= 0:
        raise click.BadParameter(f"must be a positive number, got {value}", param_hint=f"'{option}'")
    return number


def _positive_number_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    return _positive_number(param.opts[0], value)


def clip_spec_from_options(ctx: click.Context, n_frames: int, frame_step: int, size: tuple[int, int],
                           clips_per_video: int, seed: int, sampling: str | None, fps: str | float | None,
                           clip_seconds: str | float | None, eval_clips: int | None,
                           draw: str | None = None) -> ClipSpec:
    """The one ClipSpec the options describe; an option the chosen sampling would ignore is a usage error."""
    rate, seconds = _positive_number("--fps", fps), _positive_number("--clip-seconds", clip_seconds)
    if rate is not None and seconds is not None:
        raise bad_value("give --fps or --clip-seconds, not both (--clip-seconds S is --fps N_FRAMES/S)", ctx)
    timed = rate is not None or seconds is not None
    if sampling is None:
        sampling = "time" if timed else "step"
    if sampling == "time" and not timed:
        raise bad_value("--sampling time needs --fps F or --clip-seconds S", ctx)
    step_given = ctx.get_parameter_source("frame_step") is not click.core.ParameterSource.DEFAULT
    if sampling == "all":  # every frame, every --frame-step-th, or at --fps: see docs/sampling.md
        if seconds is not None:
            raise bad_value("--clip-seconds applies to --sampling time, not all (give --fps F)", ctx)
        if rate is not None and step_given:
            raise bad_value("--sampling all stores every --frame-step-th frame or the frames at --fps, not both", ctx)
        frame_step = frame_step if step_given else 1
    elif sampling != "time" and timed:
        raise bad_value(f"{'--fps' if rate is not None else '--clip-seconds'} applies to --sampling time, "
                        f"not {sampling}", ctx)
    elif sampling != "step" and step_given:
        raise bad_value(f"--frame-step applies to --sampling step, not {sampling}", ctx)
    if seconds is not None:
        rate = n_frames / seconds
    try:  # the rules of one setting alone and of their combinations are ClipSpec's, stated once there
        return ClipSpec(n_frames=n_frames, frame_step=frame_step, height=size[0], width=size[1],
                        clips_per_video=clips_per_video, seed=seed, sampling=sampling, fps=rate,
                        eval_clips=eval_clips, draw=draw or "step")
    except ValueError as exc:
        raise bad_value(str(exc), ctx) from None


def parse_size(text: str) -> tuple[int, int]:
    """``"224"`` -> (224, 224); ``"180x320"`` -> (180, 320), height first; else click's ``BadParameter``."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(part.strip().isdigit() for part in parts):
        raise click.BadParameter(f"{text!r}: expected N or HxW, e.g. 224 or 180x320")
    height, width = (int(part) for part in (parts * 2)[:2])
    if min(height, width) < 1:
        raise click.BadParameter(f"{text!r}: height and width must be at least 1")
    return height, width


def parse_shards(text: str) -> int | None:
    """``"auto"`` -> None (about 128 MiB per shard); ``"N"`` -> N shards per split; else click's ``BadParameter``."""
    if text == "auto":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise click.BadParameter(f"{text!r}: expected auto or a whole number of at least 1")
    return int(text)


def check_file_format(file_format: str, compression: str) -> None:
    """ArrayRecord: no --compression gzip (its chunks are compressed already), and the package installed."""
    if file_format != "array_record":
        return
    if compression != "none":
        raise bad_value("--compression gzip applies to TFRecord files; ArrayRecord compresses its own chunks "
                            "(zstd): leave --compression none")
    if importlib.util.find_spec("array_record") is None:
        raise VidshardError("--format array_record needs the array_record package: pip install 'vidshard[grain]'")


@click.command(
    "shard",
    cls=_ShardCommand,
    epilog=_EPILOG,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("source")
@click.argument("data_dir")
@catalog_options
@selection_options
@click.option("--n-frames", default=10, show_default=True, metavar="N", type=click.IntRange(min=1),
              help="Frames per clip.")
@click.option("--frame-step", default=15, show_default=True, metavar="N", type=click.IntRange(min=1),
              help="Source frames between two kept frames.")
@click.option("--size", default="224", show_default=True, metavar="N|HxW",
              callback=lambda _ctx, _param, value: parse_size(value),
              help="Output frame size (letterboxed, aspect kept).")
@click.option("--clips-per-video", default=1, show_default=True, metavar="N", type=click.IntRange(min=1),
              help="Clips cut from every video (of train, with --eval-clips).")
@click.option("--sampling", default=None, metavar="|".join(SAMPLINGS), type=click.Choice(SAMPLINGS),
              help="How a clip's frames are chosen: step (every --frame-step-th frame, the tutorial's), time "
                   "(every 1/--fps seconds, by each video's own frame rate) or segments (one frame from each of "
                   "--n-frames equal parts of the whole video, TSN); all stores every frame of each video (every "
                   "--frame-step-th, or at --fps), unpadded, and readers draw --n-frames clips from it every epoch.  "
                   "[default: step; time with --fps/--clip-seconds]")
@click.option("--fps", default=None, metavar="F", callback=_positive_number_option,
              help="Time sampling: frames per second of the clip.")
@click.option("--clip-seconds", default=None, metavar="S", callback=_positive_number_option,
              help="Time sampling: seconds one clip covers, each frame standing for S/N_FRAMES seconds (the "
                   "same as --fps N_FRAMES/S).")
@click.option("--draw", default=None, metavar="|".join(DRAWS), type=click.Choice(DRAWS),
              help="--sampling all: how readers draw each epoch's --n-frames clip from a stored video: step "
                   "(consecutive stored frames) or segments (one from each of --n-frames parts, TSN).  [default: step]")
@click.option("--eval-clips", default=None, metavar="K", type=click.IntRange(min=1),
              help="Clips per video of every split but train, spread uniformly over the video (multi-view "
                   "evaluation); train keeps --clips-per-video seeded random clips.")
@click.option("--encoding", default="jpeg", show_default=True, metavar="|".join(ENCODINGS),
              type=click.Choice(ENCODINGS), help="How frames are stored.")
@click.option("--quality", default=95, show_default=True, metavar="1..100", type=click.IntRange(1, 100),
              help="JPEG quality.")
@click.option("--shards", default="auto", show_default=True, metavar="auto|N",
              callback=lambda _ctx, _param, value: parse_shards(value),
              help="Shard files per split; auto aims at about 128 MiB per file.")
@click.option("--compression", default="none", show_default=True, metavar="|".join(COMPRESSIONS),
              type=click.Choice(COMPRESSIONS), help="Compress shard files.")
@click.option("--overwrite", is_flag=True,
              help="Replace the vidshard output in DATA_DIR; a folder that is not one is refused, and nothing is deleted.")
@click.option("--resume", is_flag=True,
              help="Finish an interrupted run in DATA_DIR, reusing its staged examples (same source and settings only).")
@click.option("--format", "file_format", default="tfrecord", show_default=True, metavar="|".join(FILE_FORMATS),
              type=click.Choice(FILE_FORMATS),
              help="Shard files: TFRecord (sequential reads, tf.data) or ArrayRecord (random access: Grain, "
                   "map-style PyTorch; needs vidshard[grain]).")
@click.option("--timeout", default=30, show_default=True, metavar="SECONDS", type=click.IntRange(min=1),
              help="Per HTTP request.")
@click.option("--retries", default=4, show_default=True, metavar="N", type=click.IntRange(min=0),
              help="Retries (with exponential backoff) of a failed HTTP request before a video is recorded as failed.")
@click.option("--max-video-mib", default=DEFAULT_MAX_MEMBER_BYTES >> 20, show_default=True, metavar="MIB",
              type=click.IntRange(min=1),
              help="Refuse (and record) any video larger than this, declared or actual: a zip bomb cannot fill memory.")
@click.option("--insecure", is_flag=True, help="Do not verify HTTPS certificates (self-signed test servers only).")
@click.option("--quiet", is_flag=True, help="No progress bar (there is none anyway when stderr is not a terminal).")
@audit_options
@click.option("--detach", is_flag=True, help="Return once the runner has accepted the job (Dataflow, Flink, a portable "
              "job server); the job marks the output complete itself.")
@click.pass_context
def shard_command(ctx: click.Context, source: str, data_dir: str, manifest: str | None, path_template: str | None,
                  group_pattern: str | None,
                  num_classes: int | None,
                  classes: tuple[str, ...] | None, splits: SplitRequest | None, split_by: str | None,
                  split_lists: str | None, fold: int | None, seed: int, n_frames: int,
                  frame_step: int, size: tuple[int, int], clips_per_video: int, sampling: str | None,
                  fps: str | None, clip_seconds: str | None, eval_clips: int | None, draw: str | None,
                  encoding: str, quality: int,
                  shards: int | None, compression: str, overwrite: bool, resume: bool, file_format: str,
                  timeout: int, retries: int, max_video_mib: int, insecure: bool, quiet: bool,
                  detach: bool, **audit_args: object) -> None:
    """Decode SOURCE (an http(s) zip URL, an s3:// or gs:// zip or prefix/, a local zip or folder) into TFRecord
    shards in DATA_DIR (a local folder, s3:// or gs://)."""
    # Beam is imported here, not at the top, so that other vidshard commands start fast.
    from vidshard.cli.interrupts import owns_the_process
    from vidshard.pipelines.interrupt import exit_with_line
    from vidshard.pipelines.job import shard
    from vidshard.pipelines.jobserver import check_runner_environment
    from vidshard.sources import SourceOptions

    beam_args = _checked_beam_args(ctx)
    if detach:
        from vidshard.pipelines.finalize import check_detach
        check_detach(beam_args)
    check_runner_environment(beam_args)  # Spark and Flink: Java, the cluster, its version, the job-server jar
    check_file_format(file_format, compression)
    check_split_options(split_by, split_lists, fold)
    selection = selection_from_options(num_classes, classes, splits, split_by, seed, split_lists, fold, manifest,
                                       group_pattern, path_template)
    settings = EncodeSettings(clip_spec_from_options(ctx, n_frames, frame_step, size, clips_per_video, seed,
                                                     sampling, fps, clip_seconds, eval_clips, draw), encoding, quality,
                              audit_from_options(ctx, audit_args))
    source_options = SourceOptions(timeout=float(timeout), retries=retries, max_member_bytes=max_video_mib << 20,
                                   verify_tls=not insecure)
    started = []

    def announce(plan: SplitPlan, reused: int, interrupted: bool) -> None:
        started.append(True)
        click.echo(f"Sharding {len(plan.videos)} videos of {len(plan.class_names)} classes into {data_dir} ...", err=True)
        if resume:
            click.echo(f"Resuming: {reused} of the videos were staged by the interrupted run" if interrupted
                       else f"Nothing to resume in {data_dir}: starting from zero", err=True)

    def on_interrupt(name: str, staged: int, total: int) -> str:
        return (f"Interrupted ({name}): {staged} of {total} videos are staged in {data_dir}; rerun the same "
                "command with --resume to continue from there")

    try:
        result = shard(source, data_dir, selection, settings, compression=compression, shards=shards,
                       file_format=file_format, source_options=source_options, overwrite=overwrite, resume=resume,
                       beam_args=beam_args, progress=not quiet and sys.stderr.isatty() and not detach, detach=detach,
                       on_warning=lambda warning: click.echo(f"Warning: {cli_wording(warning)}", err=True),
                       on_start=announce, on_interrupt=on_interrupt if owns_the_process(ctx) else None)
    except VidshardError as exc:
        if started and owns_the_process(ctx):  # Beam's threads left by a failed pipeline abort the teardown
            exit_with_line(f"Error: {cli_wording(str(exc))}", 1)
        raise
    for line in result.summary(data_dir):
        click.echo(line)
