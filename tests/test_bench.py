"""A smoke run of ``vidshard bench`` at tiny sizes: every measurement is taken and reported.

Timings are never asserted; only that each row is there, is a real measurement, and that the
sizes it reports are the ones the format implies.  Also the prefetch that feeds ``bench-train``'s step.
"""
from __future__ import annotations

import json
import math

from click.testing import CliRunner

from vidshard.bench.prefetch import prefetch_to_device
from vidshard.cli import main


def test_bench_reports_every_row_with_measured_values(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, [
        "bench", "--videos", "6", "--small-videos", "3", "--classes", "2", "--video-size", "48x64",
        "--video-frames", "20", "--size", "16x24", "--n-frames", "3", "--frame-step", "2", "--batch-size", "2",
        "--train-videos", "2", "--job-sizes", "1,4", "--workdir", str(tmp_path / "work"), "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rows = {(row["key"], row["what"]): row for row in report["rows"]}
    assert [key for key, _ in rows] == ["a", "a", "a2", "b", "b", "c", "d", "e", "f", "f", "g"]
    for row in report["rows"]:
        if row["key"] == "g":  # a slope: at these tiny sizes noise can make it negative
            continue
        assert math.isfinite(row["vidshard"]) and row["vidshard"] > 0, row
        assert row["baseline"] is None or (math.isfinite(row["baseline"]) and row["baseline"] > 0), row
    preprocessing = report["rows"][0]["detail"]
    assert preprocessing["failed"] == 0 and preprocessing["workers"] >= 1
    sizes = next(row for row in report["rows"] if row["key"] == "c")
    raw_frames = 3 * 16 * 24 * 3
    assert raw_frames < sizes["detail"]["raw"] < raw_frames + 512  # one raw entry plus a few small features
    assert sizes["vidshard"] < sizes["detail"]["raw"]
    one, four, curve = report["rows"][-3:]
    assert one["detail"]["failed"] == four["detail"]["failed"] == 0
    assert one["target"] == "<= 1.5 s wall" and four["target"] == "report"
    points = curve["detail"]["points"]
    assert [point["videos"] for point in points] == [1, 4]
    slope = (points[1]["vidshard_seconds"] - points[0]["vidshard_seconds"]) / 3  # two points: the line is exact
    assert math.isclose(curve["vidshard"], slope, rel_tol=1e-6, abs_tol=1e-9)
    # the printed table carries every row
    assert result.output.count("\n| ") >= 12 and "Machine:" in result.output


def test_prefetch_to_device_keeps_batches_in_flight_and_order():
    started = []

    def put(batch):
        started.append(batch)
        return ("on device", batch)

    out = []
    for item in prefetch_to_device(iter(range(5)), put, size=2):
        out.append(item)
        # When batch i is handed over, the copies of the next two have already started.
        assert started == list(range(min(len(out) + 2, 5)))
    assert out == [("on device", i) for i in range(5)]
