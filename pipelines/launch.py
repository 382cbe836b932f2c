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

import contextlib
import json
import os
import shutil
import tempfile
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.runner import PipelineResult, PipelineState

from vidshard.catalog import SplitPlan
from vidshard.errors import ShardFormatError, VidshardError
from vidshard.format import naming
from vidshard.format.info import ERRORS_FILE, INFO_FILE, DatasetInfo, SplitInfo
from vidshard.pipelines import dataflow, shardio, staging
from vidshard.pipelines.failures import failures_explained, staged_count
from vidshard.pipelines.finalize import Finalize
from vidshard.pipelines.interrupt import exit_on_signals
from vidshard.pipelines.options import dask_defaults, pipeline_options
from vidshard.pipelines.output import nearest_folder
from vidshard.pipelines.progress import StagedProgress
from vidshard.pipelines.resume import manifest as resume_manifest
from vidshard.pipelines.resume import prepare as prepare_resume
from vidshard.pipelines.transforms import ShardSlot, ShardVideos, SizedLayout, WorkItem
from vidshard.quality import table as quality_table
from vidshard.sampling import EncodeSettings
from vidshard.sources import SourceOptions
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
    file_format: str = "tfrecord"  #: a name of :data:`vidshard.format.file_adapters.FILE_ADAPTERS`
    shard_bytes: int = naming.TARGET_SHARD_BYTES  #: what ``shards=None`` (auto) aims each shard at

    def sized_layout(self) -> SizedLayout | None:
        """The layout that follows the real bytes (``--sampling all`` with auto shards), else None: planned ahead."""
        if self.shards is not None or self.settings.clip_spec.sampling != "all":
            return None
        planned = Counter(video.split for video in self.plan.videos)
        return SizedLayout({split: planned[split] for split in self.plan.split_names}, self.compression,
                           self.file_format, self.shard_bytes)


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
    Whole videos (``--sampling all``) with ``--shards auto`` have no estimate: every video is
    planned in shard 0 at its rank in the split, no slot is planned, and the pipeline cuts the
    shards from the real bytes (:class:`~vidshard.pipelines.transforms.PlaceByBytes`).
    """
    plan = request.plan
    sized = request.sized_layout() is not None
    items: list[WorkItem] = []
    slots: list[ShardSlot] = []
    for split in plan.split_names:
        videos = [video for video in plan.videos if video.split == split]
        example_bytes = naming.estimate_example_bytes(request.settings.clip_spec, request.settings.encoding, split)
        num_shards = request.shards or naming.auto_num_shards(len(videos), example_bytes, request.shard_bytes)
        places = naming.assign_shards([video.video_id for video in videos], 1 if sized else num_shards, plan.seed)
        if sized:
            items += [WorkItem(split, *places[video.video_id], video.video_id, video.label, video.class_name)
                      for video in videos]
            continue
        slots += [ShardSlot(split, shard, naming.shard_name(split, shard, num_shards, request.compression,
                                                                 request.file_format))
                  for shard in range(num_shards)]
        items += [WorkItem(split, *places[video.video_id], video.video_id, video.label, video.class_name)
                  for video in videos]
    items.sort(key=lambda item: (item.split, item.shard, item.position))
    return items, slots


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


def _read_outcome(request: ShardRequest, slots: Sequence[ShardSlot]) -> tuple[list[dict], list[dict]]:
    """The shard summaries the pipeline staged, one per planned shard, and the errors they list."""
    summaries = staging.read_summaries(request.data_dir)
    planned = {(slot.split, slot.shard) for slot in slots}
    if request.sized_layout() is not None:  # the pipeline chose each split's count: every one of them written
        counts = {split: {naming.num_shards_of(summary["file"]) for summary in summaries if summary["split"] == split}
                  for split in request.plan.split_names}
        planned = {(split, shard) for split, found in counts.items() for shard in range(max(found, default=1))}
    missing = sorted(planned - {(summary["split"], summary["shard"]) for summary in summaries})
    if missing:
        shown = ", ".join(f"{split} shard {shard}" for split, shard in missing[:5])
        raise VidshardError(f"the pipeline finished without writing {len(missing)} planned shard(s) ({shown}); "
                            f"{request.data_dir} is not complete")
    errors = sorted((error for summary in summaries for error in summary["errors"]),
                    key=lambda error: (error["split"], error["video_id"]))
    return summaries, errors


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
    free = shutil.disk_usage(nearest_folder(os.path.abspath(request.data_dir))).free
    if needed > free:
        each = needed / max(len(todo) + len(items), 1)
        raise VidshardError(
            f"output {request.data_dir} needs about {needed / 2**20:.1f} MiB while the job runs ({len(items)} videos "
            f"of about {each / 2**10:.0f} KiB, staged and then written into shards), but its file system has "
            f"{free / 2**20:.1f} MiB free; free some space or choose another folder")


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
        items, slots, request.data_dir, request.source, request.source_options, request.settings, request.compression,
        sized=request.sized_layout(), file_format=request.file_format)
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
    one-writer lock (:func:`vidshard.pipelines.staging.writer_lock`), refuses a local output without room
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
    with staging.writer_lock(request.data_dir), failures_explained(request.data_dir, len(items)):
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
            pipeline = beam.Pipeline(options=pipeline_options(dask_defaults(beam_args, runner, len(todo)),
                                                              videos=len(todo)))
            _ = (pipeline | "ShardVideos" >> ShardVideos(
                todo, slots, request.data_dir, request.source, request.source_options, request.settings,
                request.compression, reused, request.sized_layout(), request.file_format)
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
