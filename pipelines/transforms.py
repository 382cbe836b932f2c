"""The Beam transforms of the sharding pipeline: what workers run.

Everything here lives in the installed package (``vidshard.pipelines.transforms``), never in
``__main__``, so Dataflow, Flink and Spark workers that install vidshard through ``setup.py`` can
unpickle it (the launcher sets ``save_main_session=False``).

Data flow::

    Create(WorkItem) -> Reshuffle -> FetchDecodeEncode ──paths──> WriteShards ──> shard summaries
                                                       └─errors─> WriteAsOneFile ──> errors.jsonl
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import apache_beam as beam
import cv2
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from vidshard import shardio
from vidshard.decode import decode_clips
from vidshard.errors import DecodeError, SourceError
from vidshard.records import ERRORS_FILE, ClipRecord, encode_example
from vidshard.sampling import ClipSpec
from vidshard.sources import SourceOptions, VideoSource, open_source

#: Namespace of every Beam metric of the pipeline (``result.metrics()`` filters on it).
METRICS_NAMESPACE = "vidshard"
#: Tag of :class:`FetchDecodeEncode`'s output of failed videos.
ERRORS_TAG = "errors"
#: Where the pipeline leaves its per-shard summaries for the launcher (inside the temp folder).
SUMMARY_FILE = "shard_summaries.json"


@dataclass(frozen=True)
class WorkItem:
    """One planned video and its fixed place in the output: (split, shard, position)."""

    split: str
    shard: int
    position: int
    video_id: str
    label: int
    label_name: str


@dataclass(frozen=True)
class EncodeSettings:
    """How clips are cut and stored: the clip spec plus the image encoding."""

    clip_spec: ClipSpec
    encoding: str
    quality: int


def _counter(name: str) -> Any:
    return Metrics.counter(METRICS_NAMESPACE, name)


def error_record(item: WorkItem, stage: str, reason: str) -> dict[str, str]:
    """One line of ``errors.jsonl``: which video, of which split, failed at which stage, and why."""
    return {"split": item.split, "video_id": item.video_id, "class_name": item.label_name,
            "stage": stage, "reason": reason}


class FetchDecodeEncode(beam.DoFn):
    """Fetch a video's bytes, decode its clips, encode and stage one Example; failures go to ``errors``.

    Main output: ``((split, shard), (position, video_id, staged file))`` (see
    :func:`vidshard.shardio.stage_example`).  A video that cannot be read
    (``fetch``), decoded (``decode``) or encoded (``encode``) is emitted on the ``errors`` tag with
    the reason and counted, and the job goes on.
    """

    def __init__(self, source_uri: str, source_options: SourceOptions, settings: EncodeSettings, output: str) -> None:
        super().__init__()
        self._output = output
        self._source_uri = source_uri
        self._source_options = source_options
        self._settings = settings
        self._source = None
        self._videos_read = _counter("videos_read")
        self._bytes_fetched = _counter("bytes_fetched")
        self._videos_decoded = _counter("videos_decoded")
        self._clips_decoded = _counter("clips_decoded")
        self._examples_encoded = _counter("examples_encoded")
        self._failed = {stage: _counter(f"videos_failed_{stage}") for stage in ("fetch", "decode", "encode")}
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

    def process(self, item: WorkItem) -> Iterator[Any]:
        try:
            data = self._open_source().read(item.video_id)
        except SourceError as exc:  # includes MemberReadError
            yield self._fail(item, "fetch", str(exc))
            return
        self._videos_read.inc()
        self._bytes_fetched.inc(len(data))

        started = time.perf_counter()
        try:
            frames, indices = decode_clips(data, item.video_id, self._settings.clip_spec)
        except DecodeError as exc:
            yield self._fail(item, "decode", str(exc))
            return
        self._decode_ms.update(int((time.perf_counter() - started) * 1000))
        self._videos_decoded.inc()
        self._clips_decoded.inc(len(frames))

        record = ClipRecord(video_id=item.video_id, label=item.label, label_name=item.label_name,
                            frames=frames, frame_indices=indices)
        try:
            example = encode_example(record, self._settings.encoding, self._settings.quality)
        except (ValueError, cv2.error) as exc:  # OpenCV refused a frame (e.g. wider than JPEG allows)
            yield self._fail(item, "encode", str(exc))
            return
        self._examples_encoded.inc()
        staged = shardio.stage_example(self._output, item.split, item.shard, item.position, example)
        yield (item.split, item.shard), (item.position, item.video_id, staged)

    def _fail(self, item: WorkItem, stage: str, reason: str) -> TaggedOutput:
        self._failed[stage].inc()
        return TaggedOutput(ERRORS_TAG, error_record(item, stage, reason))


@dataclass(frozen=True)
class ShardSlot:
    """One planned shard file: its key and name."""

    split: str
    shard: int
    name: str


class _WriteShardFn(beam.DoFn):
    """Write one shard's staged examples, in their planned order, to ``output/name``."""

    def __init__(self, output: str, names: dict[tuple[str, int], str], compression: str) -> None:
        super().__init__()
        self._output = output
        self._names = names
        self._compression = compression
        self._examples_written = _counter("examples_written")
        self._shards_written = _counter("shards_written")
        self._bytes_written = _counter("bytes_written")

    def process(self, element: tuple[tuple[str, int], dict[str, Iterable[Any]]]) -> Iterator[dict[str, Any]]:
        (split, shard), grouped = element
        # Arrival order differs between runs and runners, the planned position does not.  Only the
        # small (position, id, path) entries are held; examples stream from their staged files.
        entries = sorted(grouped["examples"], key=lambda entry: entry[0])
        name = self._names[(split, shard)]
        count, size = shardio.write_shard(
            self._output, name, (shardio.read_bytes(path) for _, _, path in entries), self._compression)
        self._examples_written.inc(count)
        self._shards_written.inc()
        self._bytes_written.inc(size)
        yield {"split": split, "shard": shard, "file": name, "count": count, "bytes": size,
               "video_ids": [video_id for _, video_id, _ in entries]}


class WriteShards(beam.PTransform):
    """Group staged examples by (split, shard) and write every planned shard, empty ones included.

    ``beam.io.WriteToTFRecord(num_shards=N)`` is not used: it puts each element in a random shard
    and writes shards in arrival order, so the bytes of each file would change from run to run
    and runner to runner; and it shuffles the examples themselves, which the DirectRunner holds
    in memory all at once.  Here the launcher fixed every video's shard and position in advance;
    this transform groups the staged examples' paths, sorts them and streams the files into the
    shard.  Planned shards whose videos all failed are still written (empty), so ``-of-NNNNN``
    is honest.

    Output: one summary dict per shard (split, shard, file, count, bytes, video_ids).
    """

    def __init__(self, output: str, slots: Iterable[ShardSlot], compression: str) -> None:
        super().__init__()
        self._output = output
        self._slots = tuple(slots)
        self._compression = compression

    def expand(self, keyed_examples: beam.PCollection) -> beam.PCollection:
        planned = keyed_examples.pipeline | "PlannedShards" >> beam.Create(
            [((slot.split, slot.shard), None) for slot in self._slots])
        names = {(slot.split, slot.shard): slot.name for slot in self._slots}
        return (
            {"examples": keyed_examples, "planned": planned}
            | "GroupByShard" >> beam.CoGroupByKey()
            | "WriteShardFiles" >> beam.ParDo(_WriteShardFn(self._output, names, self._compression))
        )


def _write_errors(errors: list[dict[str, str]], output: str) -> None:
    lines = sorted(errors, key=lambda error: (error["split"], error["video_id"]))
    shardio.write_text(output, ERRORS_FILE, "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))


class WriteAsOneFile(beam.PTransform):
    """Collect a small PCollection (one entry per video or per shard) and write it as one file.

    ``write(entries, output)`` sorts before writing, so the file is the same whatever order the
    runner delivers the entries in; it runs once, and writes even when there are no entries.
    """

    def __init__(self, write: Callable[[list[Any], str], None], output: str) -> None:
        super().__init__()
        self._write = write
        self._output = output

    def expand(self, entries: beam.PCollection) -> beam.PCollection:
        return entries | "Collect" >> beam.combiners.ToList() | "Write" >> beam.Map(self._write, self._output)


def _write_summaries(summaries: list[dict[str, Any]], output: str) -> None:
    ordered = sorted(summaries, key=lambda summary: (summary["split"], summary["shard"]))
    shardio.write_text(output, f"{shardio.TMP_DIR}/{SUMMARY_FILE}", json.dumps(ordered))


class ShardVideos(beam.PTransform):
    """The whole job as one composite: planned videos in, shard files and ``errors.jsonl`` out."""

    def __init__(self, items: Iterable[WorkItem], slots: Iterable[ShardSlot], output: str,
                 source_uri: str, source_options: SourceOptions, settings: EncodeSettings, compression: str) -> None:
        super().__init__()
        self._items = tuple(items)
        self._slots = tuple(slots)
        self._output = output
        self._source_uri = source_uri
        self._source_options = source_options
        self._settings = settings
        self._compression = compression

    def expand(self, root: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        results = (
            root
            | "PlannedVideos" >> beam.Create(self._items)
            # Create emits few, large bundles; Reshuffle spreads the videos over all workers.
            | "Distribute" >> beam.Reshuffle()
            | "FetchDecodeEncode" >> beam.ParDo(
                FetchDecodeEncode(self._source_uri, self._source_options, self._settings, self._output)
            ).with_outputs(ERRORS_TAG, main="examples")
        )
        summaries = results.examples | "WriteShards" >> WriteShards(self._output, self._slots, self._compression)
        return {
            "summaries": summaries | "WriteSummaries" >> WriteAsOneFile(_write_summaries, self._output),
            "errors": results[ERRORS_TAG] | "WriteErrors" >> WriteAsOneFile(_write_errors, self._output),
        }
