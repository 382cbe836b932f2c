"""The Beam transforms of the sharding pipeline: what workers run.

Everything here lives in the installed package (``vidshard.pipelines.transforms``), never in
``__main__``, so Dataflow, Flink and Spark workers that install vidshard through ``setup.py`` can
unpickle it (the launcher sets ``save_main_session=False``).

Data flow (one leaf, no tagged outputs)::

    Create(WorkItems by file) -> Reshuffle -> FetchDecodeEncode ─((split, shard), Outcome)─┐
    Create(planned shards, outcomes staged by an earlier run) ───────────────────┴> Flatten
        -> GroupByKey(split, shard) -> WriteShardFn ─> shard files + shard summaries

With ``--sampling all`` and ``--shards auto`` the number of shards of a split is known only once
its examples are encoded (each video's sequence has its own length): every video is staged at
its rank in the split, the real bytes of the staged examples are summed per split, and the shard
count computed from that sum reaches the writer as a side input (:class:`PlaceByBytes`)::

    outcomes ─> sum of example bytes per split ─> shards per split ─┐ (side input)
    outcomes ─> (split, shard) by rank ─────────────────────────────┴> GroupByKey -> WriteShardFn

Every outcome (a staged example or an error record) and every shard summary is also a file in
the output's staging folder (:mod:`vidshard.pipelines.staging`): the launcher reads errors, counts and
bytes fetched from there, not from runner metrics, which not every runner serves.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import apache_beam as beam
import cv2
from apache_beam.metrics import Metrics

from vidshard.pipelines import shardio, staging
from vidshard.decode import decode_clips
from vidshard.errors import DecodeError, SourceError, SourceUnreachableError
from vidshard.format import naming
from vidshard.format.info import stores_frame_times
from vidshard.format.schema import ClipRecord, encode_example
from vidshard.quality.flags import Audit, describe
from vidshard.quality.table import pair_exclusions
from vidshard.quality.video import audit_row
from vidshard.sampling import EncodeSettings, parse_segment
from vidshard.sources import SourceOptions, VideoSource, open_source

#: Namespace of every Beam metric of the pipeline, for runners that show them while running.
METRICS_NAMESPACE = "vidshard"

#: One INFO line per video, on the worker that processed it.  Workers log at ERROR unless told
#: otherwise (see options.pipeline_options); with Beam's ``--sdk_harness_log_level_overrides
#: '{"vidshard.pipelines.transforms": "INFO"}'`` a cluster's worker logs say which worker took which video.
_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkItem:
    """One planned video and its fixed place in the output: (split, shard, position).

    ``video_id`` is a source member, or a segment of one (``path#t=START,END``): the member is
    fetched, the segment cut at decode time.
    """

    split: str
    shard: int
    position: int
    video_id: str
    label: int
    label_name: str


def _counter(name: str) -> Any:
    return Metrics.counter(METRICS_NAMESPACE, name)


def error_record(item: WorkItem, stage: str, reason: str) -> dict[str, str]:
    """One line of ``errors.jsonl``: which video, of which split, failed at which stage, and why."""
    return {"split": item.split, "video_id": item.video_id, "class_name": item.label_name,
            "stage": stage, "reason": reason}


@dataclass(frozen=True)
class Outcome:
    """What became of one planned video, and the staged file that records it.

    ``path`` is the staged example (see :func:`vidshard.pipelines.staging.stage_example`), or, for a video
    that failed, the staged error record, which ``error`` repeats.  ``fetched`` is the number of
    source bytes read for it in this run (0 for an outcome reused from an earlier run).
    """

    position: int
    video_id: str
    path: str
    error: dict[str, str] | None = None
    fetched: int = 0
    quality: dict[str, Any] | None = None  #: the video's quality.jsonl row, when the run audits


class FetchDecodeEncode(beam.DoFn):
    """Fetch a video's bytes, decode its clips, encode and stage one Example, or stage why not.

    Input: one :class:`WorkItem`, or the WorkItems of every segment of one file (see
    :func:`by_file`): the file is then fetched once for all of them.  Output, for every video
    (segment): ``((split, shard), Outcome)``.  A video that cannot be read (``fetch``), decoded
    (``decode``) or encoded (``encode``) becomes an error outcome with the reason and is counted,
    and the job goes on; a file that cannot be fetched fails each of its segments, and a source
    that cannot be reached at all (:class:`~vidshard.errors.SourceUnreachableError`) fails the job.
    """

    def __init__(self, source_uri: str, source_options: SourceOptions, settings: EncodeSettings, data_dir: str) -> None:
        super().__init__()
        self._data_dir = data_dir
        self._source_uri = source_uri
        self._source_options = source_options
        self._settings = settings
        self._source = None
        self._videos_read = _counter("videos_read")
        self._bytes_fetched = _counter("bytes_fetched")
        self._videos_decoded = _counter("videos_decoded")
        self._clips_decoded = _counter("clips_decoded")
        self._examples_encoded = _counter("examples_encoded")
        self._failed = {stage: _counter(f"videos_failed_{stage}") for stage in ("fetch", "decode", "encode", "quality")}
        self._decode_ms = Metrics.distribution(METRICS_NAMESPACE, "decode_ms")

    def setup(self) -> None:
        """Per worker: one open source (one HTTP session / RemoteZip), single-threaded OpenCV."""
        # Workers already run one process per core; OpenCV's own thread pool would oversubscribe.
        cv2.setNumThreads(1)
        try:
            self._source = open_source(self._source_uri, self._source_options)
        except SourceError:
            # A source that cannot be reached now must fail videos (recorded, counted), not the
            # worker: process() tries again for every video and records the reason.
            self._source = None

    def _open_source(self) -> VideoSource:
        if self._source is None:
            self._source = open_source(self._source_uri, self._source_options)
        return self._source

    def teardown(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def process(self, element: WorkItem | tuple[WorkItem, ...]) -> Iterator[tuple[tuple[str, int], Outcome]]:
        items = (element,) if isinstance(element, WorkItem) else element
        try:
            data = self._open_source().read(parse_segment(items[0].video_id)[0])
        except SourceUnreachableError:
            raise  # the source is gone: the job stops (the launcher says so); what is staged stays for --resume
        except SourceError as exc:  # includes MemberReadError
            for item in items:
                yield self._fail(item, "fetch", str(exc), 0)
            return
        self._videos_read.inc()
        self._bytes_fetched.inc(len(data))
        for number, item in enumerate(items):  # the bytes were fetched once: counted on the first outcome
            yield self._decode_encode(item, data, len(data) if number == 0 else 0)

    def _decode_encode(self, item: WorkItem, data: bytes, fetched: int) -> tuple[tuple[str, int], Outcome]:
        """Decode, encode and stage one video (or segment) of fetched bytes; its outcome either way."""
        started = time.perf_counter()
        try:
            decoded = decode_clips(data, item.video_id, self._settings.clip_spec, item.split)
        except DecodeError as exc:
            return self._fail(item, "decode", str(exc), fetched)
        self._decode_ms.update(int((time.perf_counter() - started) * 1000))
        self._videos_decoded.inc()
        self._clips_decoded.inc(len(decoded.frames))

        spec = self._settings.clip_spec
        row = None
        if self._settings.audit is not None:  # signals of the frames just decoded: no second decode
            row, reason = audit_row(item.video_id, item.split, item.label_name, decoded, data, spec, self._settings.audit)
            staging.stage_quality(self._data_dir, item.split, item.shard, item.position, row)
            if reason is not None:
                return self._fail(item, "quality", reason, fetched, row)
        timing = spec.needs_timing  # version 4 records carry the timing their clips used
        record = ClipRecord(video_id=item.video_id, label=item.label, label_name=item.label_name,
                            frames=decoded.frames, frame_indices=decoded.indices,
                            source_fps=decoded.source_fps if timing else None,
                            source_frames=decoded.total_frames if timing else None,
                            frame_times=decoded.times if stores_frame_times(spec) else None)
        try:
            example = encode_example(record, self._settings.encoding, self._settings.quality)
        except (ValueError, cv2.error) as exc:  # OpenCV refused a frame (e.g. wider than JPEG allows)
            return self._fail(item, "encode", str(exc), fetched)
        self._examples_encoded.inc()
        staged = staging.stage_example(self._data_dir, item.split, item.shard, item.position, example)
        _LOGGER.info("vidshard video %s: staged", item.video_id)
        return (item.split, item.shard), Outcome(item.position, item.video_id, staged, fetched=fetched, quality=row)

    def _fail(self, item: WorkItem, stage: str, reason: str, fetched: int,
              quality: dict[str, Any] | None = None) -> tuple[tuple[str, int], Outcome]:
        self._failed[stage].inc()
        _LOGGER.info("vidshard video %s: failed at %s", item.video_id, stage)
        record = error_record(item, stage, reason)
        if quality is not None and quality.get("excluded"):  # left out by --exclude: the flag and its signal's value
            record = {**record, "flag": quality["excluded"], "value": quality["flags"][quality["excluded"]]}
        staged = staging.stage_error(self._data_dir, item.split, item.shard, item.position, record)
        return (item.split, item.shard), Outcome(item.position, item.video_id, staged, record, fetched, quality)


@dataclass(frozen=True)
class ShardSlot:
    """One planned shard file: its key and name."""

    split: str
    shard: int
    name: str


@dataclass(frozen=True)
class SizedLayout:
    """A layout whose shard counts follow the real bytes of the encoded examples (``--sampling all``, ``--shards auto``).

    Every video is planned at ``(split, 0, rank)``, its rank among the ``planned[split]`` videos of
    its split by :func:`vidshard.format.naming.order_key`; :class:`PlaceByBytes` moves it to its
    shard once the split's bytes are known.  The shards are cut as ``assign_shards`` cuts them.
    """

    planned: dict[str, int]  #: videos planned per split (every split, empty ones too)
    compression: str
    file_format: str
    target_bytes: int = naming.TARGET_SHARD_BYTES

    def num_shards(self, split: str, total_bytes: int) -> int:
        """Shards for ``split`` whose examples add up to ``total_bytes`` (TFRecord framing included)."""
        return naming.shards_for_bytes(self.planned[split], total_bytes, self.target_bytes)


class WriteShardFn(beam.DoFn):
    """Write one shard's staged examples, in their planned order, and record the shard's summary.

    Input: ``((split, shard), outcomes)``, where ``None`` entries only mark the shard as planned.
    Output (and a file in the staging folder, :func:`vidshard.pipelines.staging.write_summary`): the
    summary ``{split, shard, file, count, bytes, video_ids, errors, bytes_fetched}``, plus ``quality``
    (the videos' rows) when the run audits.  Side inputs: ``num_shards`` (split -> shards, when the
    layout follows the real bytes); ``excluded`` (when the run leaves out near-duplicates):
    ``video_id -> {flag, value, other, other_split}``; those videos become errors.
    """

    def __init__(self, data_dir: str, names: dict[tuple[str, int], str] | None, compression: str,
                 file_format: str = "tfrecord", audit: Audit | None = None) -> None:
        super().__init__()
        self._data_dir = data_dir
        self._names = names  # None: named from the side input ``num_shards`` (a :class:`SizedLayout`)
        self._compression = compression
        self._file_format = file_format
        self._audit = audit
        self._examples_written = _counter("examples_written")
        self._shards_written = _counter("shards_written")
        self._bytes_written = _counter("bytes_written")

    def process(self, element: tuple[tuple[str, int], Iterable[Outcome | None]],
                num_shards: dict[str, int] | None = None,
                excluded: dict[str, dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
        (split, shard), grouped = element
        # Arrival order differs between runs and runners, the planned position does not.  Only the
        # small outcomes are held; examples stream from their staged files.
        outcomes = sorted((outcome for outcome in grouped if outcome is not None), key=lambda o: o.position)
        if excluded:
            outcomes = [self._exclude(outcome, excluded[outcome.video_id])
                        if outcome.error is None and outcome.video_id in excluded else outcome for outcome in outcomes]
        examples = [outcome for outcome in outcomes if outcome.error is None]
        if self._names is None:
            name = naming.shard_name(split, shard, num_shards[split], self._compression, self._file_format)
        else:
            name = self._names[(split, shard)]
        count, size = shardio.write_shard(
            self._data_dir, name, (shardio.read_bytes(outcome.path) for outcome in examples), self._compression,
            self._file_format)
        self._examples_written.inc(count)
        self._shards_written.inc()
        self._bytes_written.inc(size)
        summary = {"split": split, "shard": shard, "file": name, "count": count, "bytes": size,
                   "video_ids": [outcome.video_id for outcome in examples],
                   "errors": [outcome.error for outcome in outcomes if outcome.error is not None],
                   "bytes_fetched": sum(outcome.fetched for outcome in outcomes)}
        if self._audit is not None:
            summary["quality"] = [outcome.quality for outcome in outcomes if outcome.quality is not None]
        staging.write_summary(self._data_dir, summary)
        yield summary

    def _exclude(self, outcome: Outcome, why: dict[str, Any]) -> Outcome:
        """A near-duplicate that ``--exclude`` leaves out, as an error outcome naming the flag, the distance
        and the copy that is kept."""
        row = dict(outcome.quality or {})
        row["excluded"] = why["flag"]
        reason = (describe(why["flag"], why["value"], self._audit.thresholds)
                  + f"; the copy kept is {why['other']} ({why['other_split']})")
        record = {"split": row.get("split", ""), "video_id": outcome.video_id, "class_name": row.get("class_name", ""),
                  "stage": "quality", "reason": reason, "flag": why["flag"], "value": why["value"]}
        return Outcome(outcome.position, outcome.video_id, outcome.path, record, outcome.fetched, row)


def _split_bytes(element: tuple[tuple[str, int], Outcome]) -> tuple[str, int]:
    """(split, bytes the video's example takes in a TFRecord shard); 0 for a failed video."""
    (split, _), outcome = element
    size = 0 if outcome.error is not None else staging.example_size(outcome.path) + naming.RECORD_OVERHEAD
    return split, size


def _place_by_rank(element: tuple[tuple[str, int], Outcome], num_shards: dict[str, int],
                   planned: dict[str, int]) -> tuple[tuple[str, int], Outcome]:
    """A video staged at its rank in the split, keyed by the shard that rank falls in."""
    (split, _), outcome = element
    shard, _ = naming.shard_of_rank(outcome.position, planned[split], num_shards[split])
    return (split, shard), outcome  # the rank still orders the shard's videos


def _shards_of_split(split_bytes: tuple[str, int], layout: SizedLayout) -> tuple[str, int]:
    split, total_bytes = split_bytes
    return split, layout.num_shards(split, total_bytes)


def _planned_shards(split_shards: tuple[str, int]) -> list[tuple[tuple[str, int], None]]:
    split, count = split_shards
    return [((split, shard), None) for shard in range(count)]


class PlaceByBytes(beam.PTransform):
    """Outcomes staged by rank in, ``(outcomes keyed by (split, shard), shards per split)`` out.

    The shards per split come from the real bytes of the split's staged examples (their sizes are
    in the staged files' names, so no example is read), summed by ``CombinePerKey``: the same
    plan gives the same bytes, hence the same count and the same cut, on every runner and any
    number of workers.  Every planned split gets a count, an empty or all-failed one too (1).
    """

    def __init__(self, layout: SizedLayout) -> None:
        super().__init__()
        self._layout = layout

    def expand(self, outcomes: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        layout = self._layout
        every_split = outcomes.pipeline | "EverySplit" >> beam.Create([(split, 0) for split in layout.planned])
        counts = (
            (outcomes | "ExampleBytes" >> beam.Map(_split_bytes), every_split)
            | "BytesAndSplits" >> beam.Flatten()
            | "BytesPerSplit" >> beam.CombinePerKey(sum)
            | "ShardsPerSplit" >> beam.Map(_shards_of_split, layout)
        )
        placed = outcomes | "ShardByRank" >> beam.Map(_place_by_rank, beam.pvalue.AsDict(counts), layout.planned)
        return placed, counts


class WriteShards(beam.PTransform):
    """Group outcomes by (split, shard) and write every planned shard, empty ones included.

    ``beam.io.WriteToTFRecord(num_shards=N)`` is not used: it puts each element in a random shard
    and writes shards in arrival order, so the bytes of each file would change from run to run
    and runner to runner; and it shuffles the examples themselves, which the DirectRunner holds
    in memory all at once.  Here the launcher fixed every video's shard and position in advance;
    this transform groups the outcomes (small: a path each), sorts them and streams the staged
    files into the shard.  Planned shards whose videos all failed are still written (empty), so
    ``-of-NNNNN`` is honest.  ``reused`` are outcomes staged by an earlier, interrupted run.

    Output: one summary dict per shard (see :class:`WriteShardFn`).
    """

    def __init__(self, data_dir: str, slots: Iterable[ShardSlot], compression: str,
                 reused: Iterable[tuple[tuple[str, int], Outcome]] = (), sized: SizedLayout | None = None,
                 audit: Audit | None = None, file_format: str = "tfrecord") -> None:
        super().__init__()
        self._data_dir = data_dir
        self._slots = tuple(slots)
        self._compression = compression
        self._file_format = file_format
        self._reused = tuple(reused)
        self._sized = sized
        self._audit = audit

    def expand(self, outcomes: beam.PCollection) -> beam.PCollection:
        side_inputs: dict[str, Any] = {}
        if self._sized is None:
            known = outcomes.pipeline | "PlannedShards" >> beam.Create(
                [((slot.split, slot.shard), None) for slot in self._slots] + list(self._reused))
            names = {(slot.split, slot.shard): slot.name for slot in self._slots}
            every = (outcomes, known) | "WithPlanned" >> beam.Flatten()
            write = WriteShardFn(self._data_dir, names, self._compression, self._file_format, self._audit)
        else:  # no slots planned: the shards per split follow the real bytes (:class:`PlaceByBytes`)
            reused = outcomes.pipeline | "ReusedOutcomes" >> beam.Create(list(self._reused))
            placed, counts = ((outcomes, reused) | "WithReused" >> beam.Flatten()
                              | "PlaceByBytes" >> PlaceByBytes(self._sized))
            every = (placed, counts | "PlannedShards" >> beam.FlatMap(_planned_shards)) | "WithPlanned" >> beam.Flatten()
            write = WriteShardFn(self._data_dir, None, self._compression, self._file_format, self._audit)
            side_inputs["num_shards"] = beam.pvalue.AsDict(counts)
        if self._audit is not None and self._audit.pair_exclusions:
            # Near-duplicates need every video's hashes: one list of all rows, the pairs found once, as a side input.
            excluded = (every
                        | "QualityRows" >> beam.FlatMap(_quality_row)
                        | "AllQualityRows" >> beam.combiners.ToList()
                        | "NearDuplicates" >> beam.Map(pair_exclusions, self._audit.thresholds,
                                                       self._audit.pair_exclusions, _split_order(self._slots, self._sized)))
            side_inputs["excluded"] = beam.pvalue.AsSingleton(excluded)
        return every | "GroupByShard" >> beam.GroupByKey() | "WriteShardFiles" >> beam.ParDo(write, **side_inputs)


def _quality_row(element: tuple[tuple[str, int], Outcome | None]) -> Iterator[dict[str, Any]]:
    """The quality row of a kept video's outcome (none for a planned-shard marker or a failed video)."""
    outcome = element[1]
    if outcome is not None and outcome.error is None and outcome.quality is not None:
        yield outcome.quality


def _split_order(slots: Sequence[ShardSlot], sized: SizedLayout | None) -> list[str]:
    """The splits in the plan's order (train first as planned): a pair across splits keeps the earlier one."""
    return list(sized.planned) if sized is not None else list(dict.fromkeys(slot.split for slot in slots))


def by_file(items: Iterable[WorkItem]) -> list[tuple[WorkItem, ...]]:
    """The items grouped by the file they read (a file's segments together), in first-seen order:
    each group is one element of :class:`FetchDecodeEncode`, so a file is fetched once."""
    groups: dict[str, list[WorkItem]] = {}
    for item in items:
        groups.setdefault(parse_segment(item.video_id)[0], []).append(item)
    return [tuple(group) for group in groups.values()]


class ShardVideos(beam.PTransform):
    """The whole job as one composite: planned videos in, shard files and their summaries out."""

    def __init__(self, items: Iterable[WorkItem], slots: Iterable[ShardSlot], data_dir: str,
                 source_uri: str, source_options: SourceOptions, settings: EncodeSettings, compression: str,
                 reused: Iterable[tuple[tuple[str, int], Outcome]] = (), sized: SizedLayout | None = None,
                 file_format: str = "tfrecord") -> None:
        super().__init__()
        self._sized = sized
        self._file_format = file_format
        self._items = tuple(items)
        self._slots = tuple(slots)
        self._data_dir = data_dir
        self._source_uri = source_uri
        self._source_options = source_options
        self._settings = settings
        self._compression = compression
        self._reused = tuple(reused)

    def expand(self, root: beam.pvalue.PBegin) -> beam.PCollection:
        outcomes = (
            root
            | "PlannedVideos" >> beam.Create(by_file(self._items))
            # Create emits few, large bundles; Reshuffle spreads the videos over all workers.
            | "Distribute" >> beam.Reshuffle()
            | "FetchDecodeEncode" >> beam.ParDo(
                FetchDecodeEncode(self._source_uri, self._source_options, self._settings, self._data_dir))
        )
        return outcomes | "WriteShards" >> WriteShards(self._data_dir, self._slots, self._compression, self._reused,
                                                       self._sized, self._settings.audit, self._file_format)
