"""The pipeline's transforms one at a time, with Beam's TestPipeline and assert_that.

The end-to-end runs (and byte identity across runners) are in test_pipeline.py; here each
transform gets inputs chosen to reach one behaviour: a good video, one that cannot be fetched,
one that cannot be decoded, outcomes of several shards arriving out of order, an empty shard.
"""
from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from vidshard.pipelines import staging
from vidshard.format.schema import parse_example
from vidshard.format.tfrecord import iter_records
from vidshard.pipelines.transforms import (
    EncodeSettings, FetchDecodeEncode, Outcome, ShardSlot, WorkItem, WriteShards,
)
from vidshard.sampling import ClipSpec
from vidshard.sources import SourceOptions
from vidshard.testing.synthetic import MOTION_CLASSES, make_ucf_zip

CLASS = MOTION_CLASSES[0]
GOOD = f"UCF101/v_{CLASS}_g01_c01.avi"
CORRUPT = f"UCF101/v_{CLASS}_g02_c01.avi"
MISSING = f"UCF101/v_{CLASS}_g03_c01.avi"
SETTINGS = EncodeSettings(ClipSpec(n_frames=3, frame_step=2, height=16, width=20, clips_per_video=1, seed=3), "png", 95)


@pytest.fixture(scope="module")
def zip_source(tmp_path_factory, tiny_spec):
    path = tmp_path_factory.mktemp("src") / "one.zip"
    make_ucf_zip(path, classes=[CLASS], groups=1, clips_per_group=1, spec=tiny_spec,
                 extra_members={CORRUPT: b"not a video at all" * 100})
    return str(path)


def _item(video_id: str, position: int) -> WorkItem:
    return WorkItem("train", 1, position, video_id, 0, CLASS)


def test_fetch_decode_encode_stages_an_outcome_for_every_video(zip_source, tmp_path):
    output = str(tmp_path / "out")
    items = [_item(GOOD, 0), _item(CORRUPT, 1), _item(MISSING, 2)]

    def check(outcomes):
        assert sorted((key, o.position, o.video_id, o.error and o.error["stage"]) for key, o in outcomes) == [
            (("train", 1), 0, GOOD, None), (("train", 1), 1, CORRUPT, "decode"), (("train", 1), 2, MISSING, "fetch")]
        fetched = {o.video_id: o.fetched for _, o in outcomes}
        assert fetched[GOOD] > 1000 and fetched[CORRUPT] == 1800 and fetched[MISSING] == 0
        for _, outcome in outcomes:
            if outcome.error:
                assert outcome.error["split"] == "train" and outcome.error["class_name"] == CLASS
                assert outcome.error["reason"] and outcome.error["video_id"] == outcome.video_id

    with BeamTestPipeline() as pipeline:
        outcomes = (pipeline | beam.Create(items)
                    | beam.ParDo(FetchDecodeEncode(zip_source, SourceOptions(), SETTINGS, output)))
        assert_that(outcomes, check)

    # Every outcome is also a staged file: the example itself, or the error record as JSON.
    staged = {(s.position, s.is_error): s.path for s in staging.staged_outcomes(output)}
    assert sorted(staged) == [(0, False), (1, True), (2, True)]
    record = parse_example(open(staged[(0, False)], "rb").read(), SETTINGS.encoding)
    assert record.video_id == GOOD and record.frames.shape == (1, 3, 16, 20, 3)
    assert json.loads(open(staged[(2, True)]).read())["stage"] == "fetch"
    assert staging.count_outcomes(output) == (3, 2)


def test_write_shards_groups_orders_and_writes_empty_planned_shards(tmp_path):
    output = str(tmp_path / "out")
    slots = [ShardSlot("train", 0, "train-0"), ShardSlot("train", 1, "train-1"), ShardSlot("val", 0, "val-0")]
    records = {position: np.random.default_rng(position).bytes(50 + position) for position in range(4)}

    def example(shard: int, position: int, fetched: int = 7) -> tuple[tuple[str, int], Outcome]:
        path = staging.stage_example(output, "train", shard, position, records[position])
        return ("train", shard), Outcome(position, f"v{shard}{position}", path, fetched=fetched)

    error = {"split": "train", "video_id": "v02", "class_name": "c", "stage": "decode", "reason": "bad"}
    failed = ("train", 0), Outcome(2, "v02", staging.stage_error(output, "train", 0, 2, error), error, 5)
    # Out of planned order, one of them reused from an earlier run (fetched 0 in this run).
    fresh = [example(0, 3), failed, example(1, 0), example(0, 0)]
    reused = [example(0, 1, fetched=0)]

    with BeamTestPipeline() as pipeline:
        summaries = pipeline | beam.Create(fresh) | WriteShards(output, slots, "none", reused)
        assert_that(summaries, equal_to([
            {"split": "train", "shard": 0, "file": "train-0", "count": 3, "bytes": 3 * 16 + 50 + 51 + 53,
             "video_ids": ["v00", "v01", "v03"], "errors": [error], "bytes_fetched": 7 + 0 + 5 + 7},
            {"split": "train", "shard": 1, "file": "train-1", "count": 1, "bytes": 16 + 50,
             "video_ids": ["v10"], "errors": [], "bytes_fetched": 7},
            {"split": "val", "shard": 0, "file": "val-0", "count": 0, "bytes": 0,
             "video_ids": [], "errors": [], "bytes_fetched": 0},
        ]))

    assert list(iter_records(tmp_path / "out" / "train-0")) == [records[0], records[1], records[3]]
    assert list(iter_records(tmp_path / "out" / "train-1")) == [records[0]]
    assert (tmp_path / "out" / "val-0").read_bytes() == b""
    assert [(s["split"], s["shard"], s["count"]) for s in staging.read_summaries(output)] == [
        ("train", 0, 3), ("train", 1, 1), ("val", 0, 0)]
