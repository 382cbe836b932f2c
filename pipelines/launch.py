"""Launch the sharding job: plan in the main program, run the Beam pipeline, then mark the output done.

The main program lists the source and plans the splits (cheap: the zip's central directory), fixes
every video's shard and position, and starts the pipeline of :mod:`vidshard.pipelines.transforms`.
After the pipeline finishes it checks that every planned video is in exactly one shard or in
``errors.jsonl`` and only then writes ``dataset_info.json``, last: an output without it is
incomplete.

This is library code: the ``vidshard shard`` command (:mod:`vidshard.cli.shard_cmd`) and the
demo call it; :mod:`vidshard.pipelines.shard` is the ``python -m`` entry point of the command.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import importlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (
    DirectOptions, PipelineOptions, SetupOptions, StandardOptions, WorkerOptions,
)
from apache_beam.runners.runner import PipelineResult, PipelineRunner, PipelineState

from vidshard import shardio, staging
from vidshard.catalog import SplitPlan
from vidshard.errors import CommandLineError, ShardFormatError, VidshardError
from vidshard.format import naming
from vidshard.format.info import ERRORS_FILE, INFO_FILE, DatasetInfo, SplitInfo
from vidshard.pipelines.interrupt import exit_on_signals
from vidshard.pipelines import dataflow, jobserver
from vidshard.pipelines.finalize import Finalize
from vidshard.pipelines.progress import StagedProgress
from vidshard.pipelines.resume import manifest as resume_manifest
from vidshard.pipelines.resume import prepare as prepare_resume
from vidshard.pipelines.transforms import EncodeSettings, ShardSlot, ShardVideos, WorkItem
from vidshard.quality import table as quality_table
from vidshard.sources import SourceOptions, check_output_location
from vidshard.version import __version__


@dataclass(frozen=True)
class ShardRequest:
    """Everything a sharding job needs, decided before any video is read."""

    source: str
    data_dir: str
    plan: SplitPlan
    settings: EncodeSettings
    compression: str = "none"
    shards: int | None = None  #: shards per split; None = auto (about 128 MiB each)
    source_options: SourceOptions = field(default_factory=SourceOptions)
    file_format: str = "tfrecord"  #: ``tfrecord`` or ``array_record`` (the shard names carry it to the writer)


@dataclass(frozen=True)
class ShardResult:
    """What a finished job wrote, for the summary line."""

    info: DatasetInfo
    written: dict[str, int]
    failed: dict[str, int]
    seconds: float
    errors_path: str
    bytes_fetched: int  #: source bytes read by this run's workers
    reused: int = 0  #: videos whose staged examples an interrupted run left (``--resume``)
    dry_run: bool = False  #: Dataflow ``--dry_run``: translated, nothing submitted or written
    job_file: str | None = None  #: where a dry run wrote the Dataflow job (``--dataflow_job_file``)
    submitted: str | None = None  #: ``--detach``: the id of the job the runner accepted

    @property
    def clips_per_second(self) -> float:
        """Clips this run made per second (examples reused by ``--resume`` not counted)."""
        # reused examples are not counted; they are spread over the splits as the written ones are
        written = sum(self.written.values())
        clips = sum(count * self.info.clip.clips_in(split) for split, count in self.written.items())
        clips = clips * (written - self.reused) / written if written else 0
        return clips / self.seconds if self.seconds > 0 else 0.0

    def summary(self, data_dir: str) -> list[str]:
        """The lines that report the job: one per split, the totals, and where ``dataset_info.json`` is."""
        if self.submitted is not None:
            return [f"Submitted: job {self.submitted} with {sum(self.written.values())} videos; it marks the output "
                    f"complete itself by writing {data_dir}/{INFO_FILE} (until then the output is incomplete)"]
        if self.dry_run:
            planned = sum(self.written.values())
            return [f"Dry run: DataflowRunner translated the job for {planned} videos and submitted nothing; "
                    f"nothing was written to {data_dir}",
                    f"Dataflow job written to {self.job_file}" if self.job_file
                    else "Pass --dataflow_job_file FILE to write the job"]
        lines = [f"{split}: {written} videos written in {len(self.info.splits[split].shards)} shard(s), "
                 f"{self.failed[split]} failed" for split, written in self.written.items()]
        failed = sum(self.failed.values())
        fetched = self.bytes_fetched / 2**20
        lines.append(
            f"{sum(self.written.values())} videos written, {failed} failed, in {self.seconds:.1f} s "
            f"({self.clips_per_second:.1f} clips/s, {fetched:.1f} MiB of video fetched); "
            + (f"failures listed in {self.errors_path}" if failed else f"no failures ({self.errors_path} is empty)")
        )
        lines.append(f"Complete: {data_dir}/{INFO_FILE}")
        return lines


def plan_layout(request: ShardRequest) -> tuple[list[WorkItem], list[ShardSlot]]:
    """Every planned video's (split, shard, position) and every planned shard file.

    ``--shards auto`` sizes each split from an estimate of bytes per Example
    (:func:`vidshard.format.naming.estimate_example_bytes`); ``--shards N`` gives every split N files.
    """
    plan = request.plan
    items: list[WorkItem] = []
    slots: list[ShardSlot] = []
    for split in plan.split_names:
        videos = [video for video in plan.videos if video.split == split]
        example_bytes = naming.estimate_example_bytes(request.settings.clip_spec, request.settings.encoding, split)
        num_shards = request.shards or naming.auto_num_shards(len(videos), example_bytes)
        places = naming.assign_shards([video.video_id for video in videos], num_shards, plan.seed)
        slots += [ShardSlot(split, shard, naming.shard_name(split, shard, num_shards, request.compression,
                                                                 request.file_format))
                  for shard in range(num_shards)]
        items += [WorkItem(split, *places[video.video_id], video.video_id, video.label, video.class_name)
                  for video in videos]
    items.sort(key=lambda item: (item.split, item.shard, item.position))
    return items, slots


#: Runners that Beam knows only by module path; vidshard accepts their short names too
#: (:func:`check_runner` checks them, :func:`pipeline_options` maps them).
RUNNER_PATHS = {"DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner"}


def _beam_parser() -> argparse.ArgumentParser:
    """The argument parser that ``PipelineOptions`` builds from every options class of Beam's SDK.

    Beam hands it to ``add_extra_args_fn``; with ``exit_on_error`` off a bad value raises
    ``ArgumentError`` instead of printing argparse's usage and exiting.
    """
    parsers: list[argparse.ArgumentParser] = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=parsers.append)
    parser = parsers[0]
    parser.exit_on_error = False
    return parser


def _defines(parser: argparse.ArgumentParser, name: str) -> bool:
    """Whether Beam's parser has an option spelt ``name`` (a flag, or an option that takes a value)."""
    try:
        return name not in parser.parse_known_args([name])[1]
    except argparse.ArgumentError:  # "expected one argument": an option that takes a value
        return True


def _close_options(parser: argparse.ArgumentParser, name: str, own_options: Sequence[str]) -> tuple[str, ...]:
    """vidshard and Beam option names close to the unknown ``name``, closest first.

    Beam's names are spelt from its option destinations (``--runner``, ``--no_save_main_session``,
    ``--experiment``, ``--job-server-timeout``) and kept only where Beam's parser defines them.
    """
    spellings = set()
    for dest in vars(parser.parse_known_args([])[0]).keys() - {"help"}:  # parsing --help would exit
        for stem in (dest, dest.removesuffix("s")):
            spellings |= {f"--{stem}", f"--no_{stem}", f"--{stem.replace('_', '-')}"}
    close = difflib.get_close_matches(name, [*own_options, *sorted(spellings)], n=8, cutoff=0.75)
    return tuple(option for option in close if option in own_options or _defines(parser, option))[:3]


def check_runner(runner: str | None) -> None:
    """Refuse a ``--runner`` that Beam cannot load, in one line naming the runners that exist.

    Beam takes its runners' class names in any case, with or without ``Runner``
    (``dataflow``), or the full module path of a ``PipelineRunner`` subclass.  The runner's
    module is imported here, before any work: a runner whose extra is not installed
    (``DataflowRunner`` without ``apache-beam[gcp]``) fails now rather than after listing.
    """
    if runner is None:
        return
    names = [*StandardOptions.KNOWN_RUNNER_NAMES, *RUNNER_PATHS]
    paths = {path.rsplit(".", 1)[-1].lower(): path
             for path in (*StandardOptions.ALL_KNOWN_RUNNERS, *RUNNER_PATHS.values())}
    path = paths.get(runner.lower(), paths.get(runner.lower() + "runner", runner))
    if "." not in path:
        close = difflib.get_close_matches(runner, names, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise VidshardError(f"--runner {runner}: no such runner{hint}; Beam's runners are {', '.join(names)}, "
                            "or the full module path of a PipelineRunner class")
    module, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError as exc:
        raise VidshardError(f"--runner {runner} cannot be loaded: {exc}; is the extra it needs installed "
                            "(apache-beam[gcp] for Dataflow, apache-beam[dask] for Dask)?") from None
    if not (isinstance(found, type) and issubclass(found, PipelineRunner)):
        raise VidshardError(f"--runner {runner}: {module} has no PipelineRunner class {name}")


def check_beam_args(beam_args: Sequence[str], own_options: Sequence[str] = (),
                    unchecked: Sequence[str] = ()) -> None:
    """Refuse what is neither a vidshard nor a Beam option, and a runner Beam lacks, before any work.

    ``beam_args`` are what vidshard did not take itself: every option in them must be one that
    Beam's Python SDK defines (hyphenated or snake_case, misspelt or not), otherwise Beam would
    drop it with a warning and run a different job (``--runer DataflowRunner`` on the
    DirectRunner).  A stray word that is no option's value is refused too.  Both raise
    :class:`CommandLineError` with the closest vidshard or Beam option names.

    ``unchecked`` (what follows a lone ``--`` on the command line) goes to Beam as it is: options
    that only a runner's job server knows (Flink, Spark).  Its values are still checked where
    Beam defines the option, and ``--runner`` wherever it is.
    """
    try:
        # The runner first: importing its module registers the options it defines (Beam's
        # DaskOptions exist only once apache_beam.runners.dask.dask_runner is imported).
        check_runner(_beam_parser().parse_known_args([*beam_args, *unchecked])[0].runner)
        parser = _beam_parser()
        _, leftover = parser.parse_known_args(list(beam_args))
        parser.parse_known_args([*beam_args, *unchecked])
    except argparse.ArgumentError as exc:
        raise VidshardError(f"Beam option {exc.argument_name}: {exc.message}") from None
    for arg in leftover:
        if arg.startswith("-"):
            name = arg.split("=", 1)[0]
            raise CommandLineError(f"No such option: {name}", name, _close_options(parser, name, own_options))
    if leftover:
        raise CommandLineError(f"Got unexpected extra argument ({leftover[0]})")


#: Up to this many videos to process, the default DirectRunner runs the job in this process
#: (``in_memory``, one thread per core: OpenCV decodes and encodes without holding the GIL).
#: Starting one worker process per core costs about 2 s more, which on 2 cores the processes
#: did not win back even at 500 UCF101-shaped videos (12.0 s in process against 14.0 s; 64
#: videos: 2.8 s against 4.5 s; docs/benchmarks.md).  Past it, worker processes: a thread pool
#: is bounded by the Python-side work per video that holds the GIL, and many cores pay for it.
IN_PROCESS_MAX_VIDEOS = 500


def pipeline_options(beam_args: Sequence[str], videos: int | None = None) -> PipelineOptions:
    """Beam options as given; without ``--runner``, the DirectRunner, sized to the job.

    A job of more than :data:`IN_PROCESS_MAX_VIDEOS` videos (or of unknown size) runs in
    ``multi_processing`` mode with one worker process per core; a smaller one in this process
    (``in_memory``, one worker thread per core).  The output bytes do not depend on the mode.  An explicit
    ``--direct_running_mode`` or ``--direct_num_workers`` wins.  ``save_main_session`` is off:
    everything workers run is in the installed package.  ``--runner DaskRunner`` stands for
    Beam's ``apache_beam.runners.dask.dask_runner.DaskRunner``.
    """
    options = PipelineOptions(jobserver.job_server_args(beam_args))  # Spark, Flink: an assembled job server
    standard = options.view_as(StandardOptions)
    standard.runner = RUNNER_PATHS.get(standard.runner, standard.runner)
    if standard.runner == RUNNER_PATHS["DaskRunner"] and importlib.util.find_spec("distributed") is None:
        raise VidshardError("--runner DaskRunner needs Dask: pip install 'vidshard[dask]' (apache-beam[dask])")
    if options.view_as(StandardOptions).runner is None:
        options.view_as(StandardOptions).runner = "DirectRunner"
        direct = options.view_as(DirectOptions)
        if not any(arg.startswith("--direct_running_mode") for arg in beam_args):
            small = videos is not None and videos <= IN_PROCESS_MAX_VIDEOS
            direct.direct_running_mode = "in_memory" if small else "multi_processing"
        if not any(arg.startswith("--direct_num_workers") for arg in beam_args):
            direct.direct_num_workers = len(os.sched_getaffinity(0))
    if not any(arg.startswith("--default_sdk_harness_log_level") for arg in beam_args):
        # Local workers log every bundle at INFO, and start-up warnings that need no action, to
        # the terminal; failures of videos are counted and listed in errors.jsonl instead.
        options.view_as(WorkerOptions).default_sdk_harness_log_level = "ERROR"
    options.view_as(SetupOptions).save_main_session = False
    return options


def _local_path(uri: str) -> str | None:
    """The absolute real path of a local source or output, None for URLs and remote filesystems."""
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme and len(scheme) > 1 and scheme != "file":  # one letter is a Windows drive
        return None
    return os.path.realpath(os.path.expanduser(uri[len("file://"):] if scheme == "file" else uri))


def _within(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _nearest_folder(path: str) -> str:
    """``path`` itself if it is a folder, else its nearest existing ancestor (where it would be created)."""
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _shown(names: Sequence[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_output(source: str, data_dir: str, overwrite: bool, resume: bool = False,
                 beam_args: Sequence[str] = ()) -> bool:
    """Refuse an output that is busy, unwritable, overlaps a local source, or is not empty without ``--overwrite``.

    Output inside a source folder would be listed as part of the source on the next run; a source
    inside the output would be deleted by ``--overwrite``.  ``overwrite`` replaces only what is
    recognisably a vidshard output (its ``dataset_info.json`` or staging folder): any other folder
    is refused with what it holds, and nothing is deleted.  An output that a live run is writing is
    refused, naming that run (:func:`vidshard.staging.live_writer`).  With ``resume`` the output must
    be absent, empty (nothing to resume: the run starts from zero) or hold an interrupted run.
    Returns whether it holds an interrupted run (a staging folder and no ``dataset_info.json``).
    A Dataflow dry run (``beam_args``) writes nothing there, so the output is not even listed.
    """
    if dataflow.is_dry_run(beam_args):
        dataflow.check_dry_run_output(overwrite, resume)
        return False
    if resume and overwrite:
        raise VidshardError("`resume` keeps what an interrupted run staged, `overwrite` deletes it: pass one of them")
    check_output_location(source, data_dir)  # object storage: reachable, and not overlapping the source
    out_path, source_path = _local_path(data_dir), _local_path(source)
    if out_path and source_path:
        if os.path.isdir(source_path) and _within(out_path, source_path):
            raise VidshardError(f"output {data_dir} is inside the source folder {source}; choose another folder")
        if _within(source_path, out_path):
            raise VidshardError(f"source {source} is inside the output {data_dir}; choose another folder")
    if out_path and os.path.exists(out_path) and not os.path.isdir(out_path):
        raise VidshardError(f"output {data_dir} exists and is not a folder")
    if out_path and not os.access(_nearest_folder(out_path), os.W_OK | os.X_OK):
        where = _nearest_folder(out_path)
        place = "" if where == out_path else f" (it would be created in {where})"
        raise VidshardError(f"output {data_dir} is not writable{place}: "
                            f"{os.strerror(errno.EROFS if _read_only(where) else errno.EACCES)}")
    try:
        FileSystems.get_filesystem(data_dir)
    except ValueError:
        raise VidshardError(f"output {data_dir}: Beam has no filesystem for this scheme here (a local path, or "
                            "gs:// with apache-beam[gcp], s3:// with apache-beam[aws], ...)") from None
    holder = staging.live_writer(data_dir)
    if holder is not None:
        raise staging.busy_error(data_dir, holder)
    try:
        existing = shardio.list_top(data_dir)
    except BeamIOError as exc:
        raise VidshardError(f"cannot list output {data_dir}: {exc}") from None
    ours = INFO_FILE in existing or shardio.TMP_DIR in existing
    interrupted = shardio.TMP_DIR in existing and INFO_FILE not in existing
    if overwrite and existing and not ours:
        raise VidshardError(f"output {data_dir} is not a vidshard output (it has no {INFO_FILE} and no "
                            f"{shardio.TMP_DIR}): it holds {_shown(existing)}; `overwrite` replaces only vidshard "
                            "outputs, so nothing was deleted: choose a new or empty folder")
    if resume and existing and not interrupted:
        what = "a finished vidshard output" if INFO_FILE in existing else \
            f"files but no interrupted vidshard run ({shardio.TMP_DIR})"
        raise VidshardError(f"output {data_dir} holds {what}: nothing to resume; pass `overwrite` to replace it")
    if existing and not overwrite and not resume:
        complete = INFO_FILE in existing
        what = "a finished vidshard output" if complete else "files (an unfinished run has no dataset_info.json)"
        hint = "`resume` to finish it or `overwrite` to replace it" if interrupted else "`overwrite` to replace it"
        raise VidshardError(f"output {data_dir} already holds {what}; pass {hint}")
    return interrupted


def _read_only(folder: str) -> bool:
    """Whether ``folder`` is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def clear_output(data_dir: str) -> None:
    """Empty a vidshard output (after ``--overwrite``, a successful plan and :func:`check_output`).

    The staging folder's lock stays: the run that clears the output holds it
    (:func:`vidshard.staging.writer_lock`).
    """
    names = shardio.list_top(data_dir)
    if not shardio.is_local(data_dir):
        shardio.remove_tree(data_dir)
        return
    if INFO_FILE not in names and shardio.TMP_DIR not in names and names:
        raise VidshardError(f"output {data_dir} is not a vidshard output; nothing was deleted")  # checked before
    for name in names:
        path = os.path.join(data_dir, name)
        if name == shardio.TMP_DIR:
            for inner in os.listdir(path):
                if inner != staging.LOCK_FILE:
                    _remove_path(os.path.join(path, inner))
        else:
            _remove_path(path)


def _remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def _describe_source(uri: str) -> str:
    """The source as recorded in dataset_info.json, without credentials or signed-URL queries."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.netloc:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _account(plan: SplitPlan, summaries: list[dict], errors: list[dict]) -> None:
    """Fail loudly unless every planned video is in exactly one shard or errors.jsonl, in its split."""
    planned = {video.video_id: video.split for video in plan.videos}
    seen: Counter[str] = Counter()
    problems: list[str] = []
    for place, video_id, split in (
        [(summary["file"], video_id, summary["split"]) for summary in summaries for video_id in summary["video_ids"]]
        + [(ERRORS_FILE, error["video_id"], error["split"]) for error in errors]
    ):
        seen[video_id] += 1
        if planned.get(video_id) != split:
            problems.append(f"{video_id} in {place} was planned for split {planned.get(video_id)!r}, not {split!r}")
    problems += [f"{video_id} appears {count} times" for video_id, count in seen.items() if count > 1]
    problems += [f"{video_id} is neither in a shard nor in {ERRORS_FILE}" for video_id in planned if not seen[video_id]]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ShardFormatError(f"the output does not account for the plan, so it is not marked complete: {shown}")


def build_info(request: ShardRequest, summaries: list[dict], errors: list[dict],
               quality: dict | None = None) -> DatasetInfo:
    """The ``dataset_info.json`` of a finished job (see docs/format.md); ``quality``: the audit's summary
    (:func:`vidshard.quality.table.summary`), recorded as ``extra["quality"]`` (audited runs only)."""
    plan, settings = request.plan, request.settings
    classes = {video.video_id: video.class_name for video in plan.videos}
    splits: dict[str, SplitInfo] = {}
    class_counts: dict[str, dict[str, int]] = {}
    for split in plan.split_names:
        own = [summary for summary in summaries if summary["split"] == split]
        splits[split] = SplitInfo(
            num_examples=sum(summary["count"] for summary in own),
            shards=[summary["file"] for summary in own],
            shard_lengths=[summary["count"] for summary in own],
            num_bytes=sum(summary["bytes"] for summary in own),
        )
        written = Counter(classes[video_id] for summary in own for video_id in summary["video_ids"])
        class_counts[split] = {name: written[name] for name in plan.class_names}
    failed = Counter(error["split"] for error in errors)
    return DatasetInfo(
        class_names=list(plan.class_names),
        splits=splits,
        clip=settings.clip_spec,
        encoding=settings.encoding,
        quality=settings.quality,
        compression=request.compression,
        split_policy=plan.policy,
        split_request=plan.request,
        seed=plan.seed,
        source=_describe_source(request.source),
        num_failed=len(errors),
        vidshard_version=__version__,
        file_format=request.file_format,
        extra={
            "plan_notes": list(plan.notes),
            "class_counts": class_counts,
            "failed_per_split": {split: failed[split] for split in plan.split_names},
            "shards_requested": request.shards or "auto",
            "shard_order": "each split sorted by sha256(f'{seed}\\0{video_id}'), cut into contiguous runs",
        } | ({"quality": quality} if quality is not None else {}),
    )


#: Default number of Dask partitions (one task each) for the videos: enough for the workers of a
#: small cluster, few enough that the grouping's task shuffle (about partitions squared tiny tasks)
#: stays cheap: 200 videos on 2 workers took 11.4 s with 16, 12.5 s with 32 and 14.7-18.0 s with
#: 64 partitions.  ``--dask_npartitions`` overrides it (2-4 per worker process on a big cluster).
DASK_PARTITIONS = 16


def _dask_defaults(beam_args: Sequence[str], runner: str, videos: int) -> list[str]:
    """For DaskRunner: ``--dask_npartitions`` from the job size unless given, and quiet Dask logs.

    DaskRunner turns ``Create`` into a Dask bag of up to 128 elements per partition and treats
    ``Reshuffle`` as a no-op, so without this a job of up to 128 videos is one task on one worker.
    The ``LocalCluster`` that Beam starts without ``--dask_client_address`` logs its scheduler's
    and workers' life at INFO to the terminal; like the DirectRunner's workers (see
    :func:`pipeline_options`) it logs warnings only, unless ``DASK_LOGGING__DISTRIBUTED`` is set.
    """
    args = list(beam_args)
    if runner != RUNNER_PATHS["DaskRunner"]:
        return args
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    if any(arg.startswith(("--dask_npartitions", "--dask_partition_size")) for arg in args):
        return args
    return args + [f"--dask_npartitions={max(1, min(videos, DASK_PARTITIONS))}"]


def _read_outcome(request: ShardRequest, slots: Sequence[ShardSlot]) -> tuple[list[dict], list[dict]]:
    """The shard summaries the pipeline staged, one per planned shard, and the errors they list."""
    summaries = staging.read_summaries(request.data_dir)
    missing = sorted({(slot.split, slot.shard) for slot in slots}
                     - {(summary["split"], summary["shard"]) for summary in summaries})
    if missing:
        shown = ", ".join(f"{split} shard {shard}" for split, shard in missing[:5])
        raise VidshardError(f"the pipeline finished without writing {len(missing)} planned shard(s) ({shown}); "
                            f"{request.data_dir} is not complete")
    errors = sorted((error for summary in summaries for error in summary["errors"]),
                    key=lambda error: (error["split"], error["video_id"]))
    return summaries, errors


def staged_count(data_dir: str) -> int:
    """Videos whose example is staged in ``data_dir`` (what ``--resume`` reuses); 0 if it cannot be listed."""
    try:
        done, failed = staging.count_outcomes(data_dir)
    except OSError:
        return 0
    return done - failed


@contextlib.contextmanager
def _private_tempdir(runner: str) -> Iterator[str | None]:
    """On the DirectRunner, this process's temporary files in a folder of their own while the block runs.

    The DirectRunner first tries Beam's Prism runner; where Prism cannot start (it is fetched from
    the internet) the attempt leaves an empty ``beam-temp*`` folder and two ``tmp*`` folders in the
    system's temporary folder, every run: they go into this folder, removed afterwards (yielded;
    None on other runners).  Other runners keep the system's temporary folder: a portable
    runner's job server (Spark, Flink) keeps its ``beam-temp*`` folder until the process exits,
    and Beam's exit hook that stops the job server fails, leaving the Java process running, if
    that folder is gone.
    """
    if runner.rsplit(".", 1)[-1].lower().removesuffix("runner") != "direct":
        yield None
        return
    folder = tempfile.mkdtemp(prefix="vidshard-")
    previous, tempfile.tempdir = tempfile.tempdir, folder
    try:
        yield folder
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(folder, ignore_errors=True)


def check_space(request: ShardRequest, todo: Sequence[WorkItem], items: Sequence[WorkItem]) -> None:
    """Refuse, before any video is read, a local output whose file system cannot hold the job's estimated peak.

    The peak is every example still to make, staged, plus every shard file (each example again):
    the staging folder is removed only once the shards are written.  Sizes are
    :func:`vidshard.format.naming.estimate_example_bytes`'s.  Object stores are not checked.
    """
    if not shardio.is_local(request.data_dir):
        return
    spec, encoding = request.settings.clip_spec, request.settings.encoding
    size = {split: naming.estimate_example_bytes(spec, encoding, split) for split in request.plan.split_names}
    needed = sum(size[item.split] for item in todo) + sum(size[item.split] for item in items)
    free = shutil.disk_usage(_nearest_folder(os.path.abspath(request.data_dir))).free
    if needed > free:
        each = needed / max(len(todo) + len(items), 1)
        raise VidshardError(
            f"output {request.data_dir} needs about {needed / 2**20:.1f} MiB while the job runs ({len(items)} videos "
            f"of about {each / 2**10:.0f} KiB, staged and then written into shards), but its file system has "
            f"{free / 2**20:.1f} MiB free; free some space or choose another folder")


#: What to do about an OSError that stopped the job, by errno.
_FIXES = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space (or raise the quota)",
          errno.EROFS: "make it writable", errno.EACCES: "make it writable", errno.EPERM: "make it writable"}
#: How a worker's exception reads in the text Beam raises (a traceback of another process, for
#: multi_processing and remote runners): the kind of error and its message.
_UNREACHABLE = re.compile(r"SourceUnreachableError: ([^\n]+)")
_OS_ERROR = re.compile(r"\[Errno (\d+)\] ([^:\n\[\]]+)(?:: '([^'\n]+)')?")


def _exception_text(exc: BaseException) -> str:
    """The messages of ``exc`` and of every exception it was raised from or during."""
    texts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


def job_failure(exc: BaseException, data_dir: str, total: int) -> VidshardError | None:
    """One line for a job that the environment stopped (a full disk, an unwritable output, a source that
    stopped answering), naming the cause and ``resume``; None for anything else (a bug keeps its traceback)."""
    text = _exception_text(exc)
    unreachable = _UNREACHABLE.search(text)
    found = _OS_ERROR.search(text)
    if unreachable:
        reason = re.sub(r" \[while running [^\]]*\]", "", unreachable.group(1)).strip()
        cause, fix = f"the source stopped answering ({reason})", "once it answers again"
    elif found:
        code, message, path = int(found.group(1)), found.group(2).strip(), found.group(3)
        cause = f"{message} (errno {code}{', ' + path if path else ''})"
        fix = _FIXES.get(code, "fix that") + ", then"
    else:
        return None
    return VidshardError(f"the job stopped: {cause}; {staged_count(data_dir)} of {total} videos are staged in "
                         f"{data_dir} and nothing is marked complete: {fix} rerun the same command with `resume`")


class _ExplainedFailures(logging.Filter):
    """Drops Beam's log records (with their tracebacks) of a failure that :func:`job_failure` words in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("apache_beam"):
            return True
        text = record.getMessage() + (f"\n{_exception_text(record.exc_info[1])}" if record.exc_info else "")
        return not (_UNREACHABLE.search(text) or _OS_ERROR.search(text))


@contextlib.contextmanager
def _failures_explained(data_dir: str, total: int) -> Iterator[None]:
    """Turn a failure of the environment in the block into :func:`job_failure`'s one line, and only that."""
    quiet, handlers = _ExplainedFailures(), list(logging.getLogger().handlers)
    for handler in handlers:  # Beam logs a failing DoFn's traceback at ERROR before it re-raises
        handler.addFilter(quiet)
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - Beam re-raises workers' errors as RuntimeError and others
        failure = job_failure(exc, data_dir, total)
        if failure is None:
            raise
        raise failure from None
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


def _interruptible(data_dir: str, total: int, on_interrupt: Callable[[str, int, int], str] | None,
                   before_exit: Callable[[], None]) -> contextlib.AbstractContextManager:
    """SIGINT/SIGTERM end the process with ``on_interrupt(signal, staged, total)`` (see :mod:`.interrupt`)."""
    if on_interrupt is None:
        return contextlib.nullcontext()
    return exit_on_signals(lambda name: on_interrupt(name, staged_count(data_dir), total), before_exit)


def finish_output(request: ShardRequest, slots: Sequence[ShardSlot]) -> tuple[DatasetInfo, list[dict], str]:
    """Account for every planned video, write ``errors.jsonl``, then ``dataset_info.json`` (last).

    The pipeline's last step calls it on a worker (:mod:`vidshard.pipelines.finalize`), so the
    output completes without the launcher; an attached launcher calls it again and finds the
    output finished (nothing is rewritten).  Returns the info, the shard summaries and the path
    of ``errors.jsonl``.
    """
    summaries, errors = _read_outcome(request, slots)
    audit, quality_text, quality = request.settings.audit, None, None
    if audit is not None:  # quality.jsonl: every audited video's row, with the pair flags that need them all
        rows = [row for summary in summaries for row in summary.get("quality", [])]
        pairs = quality_table.add_pairs(rows, audit.thresholds)
        quality_text = quality_table.to_jsonl(rows)
        quality = quality_table.summary(rows, pairs, audit.thresholds, audit.exclude)
    info = build_info(request, summaries, errors, quality)
    errors_path = FileSystems.join(request.data_dir, ERRORS_FILE)
    if INFO_FILE not in shardio.list_top(request.data_dir):
        if quality_text is not None:
            shardio.write_text(request.data_dir, quality_table.QUALITY_FILE, quality_text)
        errors_path = shardio.write_text(
            request.data_dir, ERRORS_FILE, "".join(json.dumps(error, sort_keys=True) + "\n" for error in errors))
        _account(request.plan, summaries, errors)
        # Last: its presence says the output is complete (write_text renames a finished temp file).
        shardio.write_text(request.data_dir, INFO_FILE, info.to_json())
    return info, summaries, errors_path


def _dry_run(request: ShardRequest, beam_args: Sequence[str], items: Sequence[WorkItem],
             slots: Sequence[ShardSlot], started: float) -> ShardResult:
    """Translate the job for Dataflow and write it (:mod:`vidshard.pipelines.dataflow`); DATA_DIR is not touched."""
    pipeline = beam.Pipeline(options=pipeline_options(beam_args, videos=len(items)))
    _ = (pipeline | "ShardVideos" >> ShardVideos(
        items, slots, request.data_dir, request.source, request.source_options, request.settings, request.compression)
        | "Finalize" >> Finalize(finish_output, (request, slots)))
    job_file = dataflow.write_job(pipeline.run(), beam_args)
    planned = Counter(item.split for item in items)
    return ShardResult(info=build_info(request, [], []), written={split: planned[split] for split in request.plan.split_names},
                       failed={split: 0 for split in request.plan.split_names}, seconds=time.perf_counter() - started,
                       errors_path="", bytes_fetched=0, dry_run=True, job_file=job_file)


#: States of a submitted job that is not yet running on the cluster (a portable job server
#: reports STOPPED for a job it holds but has not started).
_NOT_YET_RUNNING = (PipelineState.STOPPED, PipelineState.STARTING, PipelineState.PENDING, PipelineState.UNKNOWN)


def _detached(request: ShardRequest, result: PipelineResult, items: Sequence[WorkItem], started: float) -> ShardResult:
    """The result of a ``--detach``-ed submission, once the job runs: the job id; the job finishes the output itself.

    The launcher waits for RUNNING: a job server that the launcher started stops when it exits,
    and must have handed the job to the cluster by then.
    """
    while (state := result.state) in _NOT_YET_RUNNING:
        time.sleep(0.5)
    if state not in (PipelineState.RUNNING, PipelineState.DONE):
        raise VidshardError(f"the Beam job ended in state {state} before it ran; {request.data_dir} is not complete")
    job_id = getattr(result, "job_id", None)
    job_id = (job_id() if callable(job_id) else job_id) or getattr(result, "_job_id", None) or "(no id)"
    planned = Counter(item.split for item in items)
    return ShardResult(info=build_info(request, [], []), written={split: planned[split] for split in planned},
                       failed={split: 0 for split in planned}, seconds=time.perf_counter() - started, errors_path="",
                       bytes_fetched=0, submitted=str(job_id))


def run_job(request: ShardRequest, beam_args: Sequence[str] = (), progress: bool = False,
            resume: bool = False, on_start: Callable[[int], None] | None = None,
            on_interrupt: Callable[[str, int, int], str] | None = None, detach: bool = False) -> ShardResult:
    """Run the pipeline for a planned request and mark the output complete; see the module doc.

    The output must already be checked (:func:`check_output`) and empty or absent, or, with
    ``resume``, may hold the staging folder of an interrupted run of the same request, whose
    staged examples are reused (:mod:`vidshard.pipelines.resume`).  The run holds the output's
    one-writer lock (:func:`vidshard.staging.writer_lock`), refuses a local output without room
    for it (:func:`check_space`), and ends a failure of the environment in one line
    (:func:`job_failure`).  ``on_start(reused videos)`` is called once that is settled, just
    before the pipeline starts.  ``progress`` shows a live bar on stderr
    (:mod:`vidshard.pipelines.progress`) while the pipeline runs.  With ``on_interrupt``, SIGINT
    and SIGTERM while the pipeline runs stop its workers and end the process with status 128 +
    signal and the line ``on_interrupt(signal name, staged videos, planned videos)`` returns.  ``detach``
    returns once the runner has accepted the job, which then finishes the output on its own (the
    pipeline's last step, :mod:`vidshard.pipelines.finalize`); a Dataflow dry run only translates
    the job and writes it (:mod:`vidshard.pipelines.dataflow`).
    """
    started = time.perf_counter()
    # A bad runner fails here, before anything is written; the options are parsed once more below
    # with the job's size and the Dask defaults.
    runner = pipeline_options(beam_args).view_as(StandardOptions).runner
    items, slots = plan_layout(request)
    if dataflow.is_dry_run(beam_args):
        return _dry_run(request, beam_args, items, slots, started)
    clips = sum(request.settings.clip_spec.clips_in(item.split) for item in items)
    bar = StagedProgress(request.data_dir, len(items), clips / max(len(items), 1), progress and not detach)
    with staging.writer_lock(request.data_dir), _failures_explained(request.data_dir, len(items)):
        with _private_tempdir(runner) as temp, _interruptible(
                request.data_dir, len(items), on_interrupt, lambda: (bar.close(), temp and shutil.rmtree(temp, True))):
            wanted = resume_manifest(_describe_source(request.source), request.plan, request.settings,
                                     request.compression, request.shards, items, slots)
            todo, reused = items, []
            resuming = resume and staging.holds_run(request.data_dir)
            if resuming:
                todo, reused = prepare_resume(request.data_dir, wanted, items)
            check_space(request, todo, items)
            if not resuming:
                staging.write_manifest(request.data_dir, wanted)
            if on_start is not None:
                on_start(len(reused))
            pipeline = beam.Pipeline(options=pipeline_options(_dask_defaults(beam_args, runner, len(todo)),
                                                              videos=len(todo)))
            _ = (pipeline | "ShardVideos" >> ShardVideos(
                todo, slots, request.data_dir, request.source, request.source_options, request.settings,
                request.compression, reused)
                | "Finalize" >> Finalize(finish_output, (request, slots), request.data_dir if detach else None))
            if detach:
                return _detached(request, pipeline.run(), items, started)
            with bar:
                # The DirectRunner's run() itself blocks until the job is done; the bar's thread is already polling.
                state = pipeline.run().wait_until_finish()
        if state != PipelineState.DONE:
            raise VidshardError(f"the Beam pipeline ended in state {state}; {request.data_dir} is not complete")
        info, summaries, errors_path = finish_output(request, slots)
        shardio.remove_tree(FileSystems.join(request.data_dir, shardio.TMP_DIR))
    return ShardResult(
        info=info,
        written={split: split_info.num_examples for split, split_info in info.splits.items()},
        failed=dict(info.extra["failed_per_split"]),
        seconds=time.perf_counter() - started,
        errors_path=errors_path,
        bytes_fetched=sum(summary["bytes_fetched"] for summary in summaries),
        reused=len(reused),
    )
