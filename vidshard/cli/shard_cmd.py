"""``vidshard shard``: decode a video dataset once, with Apache Beam, into TFRecord (or ArrayRecord) shards.

Every option is checked before the source is opened (a bad value is one ``Error: ...`` line and
exit status 1), the selection is checked against the listing before any video is read, and only
then is an existing output removed (with ``--overwrite``) and the pipeline started.
"""
from __future__ import annotations

import importlib.util
import math
import sys
from typing import Callable, Sequence

import click

from vidshard.catalog import SplitRequest
from vidshard.cli.selection import (
    catalog_from_options, catalog_options, check_split_options, load_manifest, plan_from_options, selection_options,
)
from vidshard.cli.wording import cli_wording
from vidshard.errors import VidshardError
from vidshard.format.info import FILE_FORMATS
from vidshard.format.schema import ENCODINGS
from vidshard.format.tfrecord import COMPRESSIONS
from vidshard.sampling import SAMPLINGS, ClipSpec
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
    """The Beam options of the command line, checked (see :func:`~vidshard.pipelines.launch.check_beam_args`).

    An unknown option or a stray word is a usage error as click reports its own: exit status 2
    with a did-you-mean, the same in every vidshard command.
    """
    from vidshard.errors import CommandLineError
    from vidshard.pipelines.launch import check_beam_args

    unchecked = ctx.meta.get(_UNCHECKED, [])
    try:
        check_beam_args(ctx.args, [name for param in ctx.command.params for name in param.opts], unchecked)
    except CommandLineError as exc:
        if exc.option:
            raise click.NoSuchOption(exc.option, possibilities=exc.possibilities, ctx=ctx) from None
        raise click.UsageError(str(exc), ctx=ctx) from None
    return [*ctx.args, *unchecked]


def _whole(option: str, text: str, low: int = 1, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise VidshardError(f"{option} {text!r}: not a whole number") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise VidshardError(f"{option} must be {bound}, got {value}")
    return value


def _positive(option: str) -> Callable[[click.Context, click.Parameter, str], int]:
    return lambda _ctx, _param, value: _whole(option, value)


def _one_of(option: str, choices: Sequence[str]) -> Callable[[click.Context, click.Parameter, str], str]:
    def check(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
        if value not in choices:
            raise VidshardError(f"{option} {value!r}: choose one of {', '.join(choices)}")
        return value
    return check


def _positive_number(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise VidshardError(f"{option} {text!r}: not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise VidshardError(f"{option} must be a positive number, got {text}")
    return value


def clip_spec_from_options(ctx: click.Context, n_frames: int, frame_step: int, size: tuple[int, int],
                           clips_per_video: int, seed: int, sampling: str | None, fps: str | None,
                           clip_seconds: str | None, eval_clips: int | None) -> ClipSpec:
    """The one ClipSpec the options describe; an option the chosen sampling would ignore is refused."""
    rate, seconds = _positive_number("--fps", fps), _positive_number("--clip-seconds", clip_seconds)
    if rate is not None and seconds is not None:
        raise VidshardError("give --fps or --clip-seconds, not both (--clip-seconds S is --fps N_FRAMES/S)")
    timed = rate is not None or seconds is not None
    if sampling is None:
        sampling = "time" if timed else "step"
    if sampling == "time" and not timed:
        raise VidshardError("--sampling time needs --fps F or --clip-seconds S")
    if sampling != "time" and timed:
        raise VidshardError(f"{'--fps' if rate is not None else '--clip-seconds'} applies to --sampling time, "
                            f"not {sampling}")
    if sampling != "step" and ctx.get_parameter_source("frame_step") is not click.core.ParameterSource.DEFAULT:
        raise VidshardError(f"--frame-step applies to --sampling step, not {sampling}")
    if seconds is not None:
        rate = n_frames / seconds
    return ClipSpec(n_frames=n_frames, frame_step=frame_step, height=size[0], width=size[1],
                    clips_per_video=clips_per_video, seed=seed, sampling=sampling, fps=rate, eval_clips=eval_clips)


def parse_size(text: str) -> tuple[int, int]:
    """``"224"`` -> (224, 224); ``"180x320"`` -> (180, 320), height first."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2):
        raise VidshardError(f"--size {text!r}: expected N or HxW, e.g. 224 or 180x320")
    height, width = (_whole("--size", part) for part in (parts * 2)[:2])
    return height, width


def parse_shards(text: str) -> int | None:
    """``"auto"`` -> None (about 128 MiB per shard); ``"N"`` -> N shards per split."""
    return None if text == "auto" else _whole("--shards", text)


def check_file_format(file_format: str, compression: str) -> None:
    """ArrayRecord: no --compression gzip (its chunks are compressed already), and the package installed."""
    if file_format != "array_record":
        return
    if compression != "none":
        raise VidshardError("--compression gzip applies to TFRecord files; ArrayRecord compresses its own chunks "
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
@click.option("--n-frames", default="10", show_default=True, metavar="N", callback=_positive("--n-frames"),
              help="Frames per clip.")
@click.option("--frame-step", default="15", show_default=True, metavar="N", callback=_positive("--frame-step"),
              help="Source frames between two kept frames.")
@click.option("--size", default="224", show_default=True, metavar="N|HxW",
              callback=lambda _ctx, _param, value: parse_size(value),
              help="Output frame size (letterboxed, aspect kept).")
@click.option("--clips-per-video", default="1", show_default=True, metavar="N",
              callback=_positive("--clips-per-video"), help="Clips cut from every video (of train, with --eval-clips).")
@click.option("--sampling", default=None, metavar="|".join(SAMPLINGS),
              callback=lambda _ctx, _param, value: value and _one_of("--sampling", SAMPLINGS)(_ctx, _param, value),
              help="How a clip's frames are chosen: step (every --frame-step-th frame, the tutorial's), time "
                   "(every 1/--fps seconds, by each video's own frame rate) or segments (one frame from each of "
                   "--n-frames equal parts of the whole video, TSN).  [default: step; time with --fps/--clip-seconds]")
@click.option("--fps", default=None, metavar="F", help="Time sampling: frames per second of the clip.")
@click.option("--clip-seconds", default=None, metavar="S",
              help="Time sampling: seconds one clip covers, each frame standing for S/N_FRAMES seconds (the "
                   "same as --fps N_FRAMES/S).")
@click.option("--eval-clips", default=None, metavar="K", callback=lambda _ctx, _param, value: value and _whole(
              "--eval-clips", value),
              help="Clips per video of every split but train, spread uniformly over the video (multi-view "
                   "evaluation); train keeps --clips-per-video seeded random clips.")
@click.option("--encoding", default="jpeg", show_default=True, metavar="|".join(ENCODINGS),
              callback=_one_of("--encoding", ENCODINGS), help="How frames are stored.")
@click.option("--quality", default="95", show_default=True, metavar="1..100",
              callback=lambda _ctx, _param, value: _whole("--quality", value, 1, 100), help="JPEG quality.")
@click.option("--shards", default="auto", show_default=True, metavar="auto|N",
              callback=lambda _ctx, _param, value: parse_shards(value),
              help="Shard files per split; auto aims at about 128 MiB per file.")
@click.option("--compression", default="none", show_default=True, metavar="|".join(COMPRESSIONS),
              callback=_one_of("--compression", COMPRESSIONS), help="Compress shard files.")
@click.option("--overwrite", is_flag=True, help="Replace an existing, non-empty DATA_DIR.")
@click.option("--resume", is_flag=True,
              help="Finish an interrupted run in DATA_DIR, reusing its staged examples (same source and settings only).")
@click.option("--format", "file_format", default="tfrecord", show_default=True, metavar="|".join(FILE_FORMATS),
              callback=_one_of("--format", FILE_FORMATS),
              help="Shard files: TFRecord (sequential reads, tf.data) or ArrayRecord (random access: Grain, "
                   "map-style PyTorch; needs vidshard[grain]).")
@click.option("--timeout", default="30", show_default=True, metavar="SECONDS",
              callback=lambda _ctx, _param, value: _whole("--timeout", value), help="Per HTTP request.")
@click.option("--retries", default="4", show_default=True, metavar="N",
              callback=lambda _ctx, _param, value: _whole("--retries", value, 0),
              help="Retries (with exponential backoff) of a failed HTTP request before a video is recorded as failed.")
@click.option("--max-video-mib", default=str(DEFAULT_MAX_MEMBER_BYTES >> 20), show_default=True, metavar="MIB",
              callback=lambda _ctx, _param, value: _whole("--max-video-mib", value),
              help="Refuse (and record) any video larger than this, declared or actual: a zip bomb cannot fill memory.")
@click.option("--insecure", is_flag=True, help="Do not verify HTTPS certificates (self-signed test servers only).")
@click.option("--quiet", is_flag=True, help="No progress bar (there is none anyway when stderr is not a terminal).")
@click.option("--detach", is_flag=True, help="Return once the runner has accepted the job (Dataflow, Flink, a portable "
              "job server); the job marks the output complete itself.")
@click.pass_context
def shard_command(ctx: click.Context, source: str, data_dir: str, manifest: str | None, group_pattern: str | None,
                  num_classes: int | None,
                  classes: tuple[str, ...] | None, splits: SplitRequest | None, split_by: str | None,
                  split_lists: str | None, fold: int | None, seed: int, n_frames: int,
                  frame_step: int, size: tuple[int, int], clips_per_video: int, sampling: str | None,
                  fps: str | None, clip_seconds: str | None, eval_clips: int | None, encoding: str, quality: int,
                  shards: int | None, compression: str, overwrite: bool, resume: bool, file_format: str,
                  timeout: int, retries: int, max_video_mib: int, insecure: bool, quiet: bool,
                  detach: bool) -> None:
    """Decode SOURCE (an http(s) zip URL, a local zip or folder) into TFRecord shards in DATA_DIR."""
    # Beam is imported here, not at the top, so that other vidshard commands start fast.
    from vidshard.pipelines.jobserver import check_runner_environment
    from vidshard.pipelines.launch import ShardRequest, check_output, clear_output, run_job
    from vidshard.pipelines.transforms import EncodeSettings
    from vidshard.sources import SourceOptions, open_source

    beam_args = _checked_beam_args(ctx)
    if detach:
        from vidshard.pipelines.finalize import check_detach
        check_detach(beam_args)
    check_runner_environment(beam_args)  # Spark and Flink: Java, the cluster, its version, the job-server jar
    check_file_format(file_format, compression)
    interrupted = check_output(source, data_dir, overwrite, resume, beam_args)
    check_split_options(split_by, split_lists, fold)
    manifest_rows = load_manifest(manifest, group_pattern)
    settings = EncodeSettings(clip_spec_from_options(ctx, n_frames, frame_step, size, clips_per_video, seed,
                                                     sampling, fps, clip_seconds, eval_clips), encoding, quality)
    source_options = SourceOptions(timeout=float(timeout), retries=retries, max_member_bytes=max_video_mib << 20,
                                   verify_tls=not insecure)
    with open_source(source, source_options) as src:
        catalog = catalog_from_options(src.list_members(), manifest_rows, group_pattern)
    plan = plan_from_options(catalog, num_classes, classes, splits, split_by, seed, split_lists, fold)
    for warning in plan.warnings:
        click.echo(f"Warning: {cli_wording(warning)}", err=True)
    if overwrite:
        clear_output(data_dir)

    def announce(reused: int) -> None:
        click.echo(f"Sharding {len(plan.videos)} videos of {len(plan.class_names)} classes into {data_dir} ...", err=True)
        if resume:
            click.echo(f"Resuming: {reused} of the videos were staged by the interrupted run" if interrupted
                       else f"Nothing to resume in {data_dir}: starting from zero", err=True)

    result = run_job(ShardRequest(source, data_dir, plan, settings, compression, shards, source_options,
                                  file_format=file_format), beam_args,
                     progress=not quiet and sys.stderr.isatty() and not detach, resume=resume, on_start=announce,
                     detach=detach)
    for line in result.summary(data_dir):
        click.echo(line)
