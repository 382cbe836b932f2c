"""URL lists (issue 23, item 2): a table of http(s) URLs as the source, fetched by workers, with faults.

A real HTTP server (:class:`~vidshard.testing.rangeserver.RangeServer`, 127.0.0.1) serves real MP4s;
faults are injected by the server, never mocked.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("av")

from vidshard.cli import main  # noqa: E402
from vidshard.errors import MemberReadError, SourceError  # noqa: E402
from vidshard.sources import SourceOptions, UrlListSource, open_source  # noqa: E402
from vidshard.testing.codecs import write_codec_video  # noqa: E402
from vidshard.testing.rangeserver import Faults, RangeServer  # noqa: E402
from vidshard.testing.shards import read_records  # noqa: E402

FAST = SourceOptions(timeout=5, retries=2, backoff=0.01)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    for seed, name in enumerate(("a", "b", "c", "d")):
        write_codec_video(root / f"{name}.mp4", "h264", frames=45, width=48, height=32, seed=seed)
    with RangeServer(root) as server:
        yield server, root


def _table(tmp_path: Path, name: str, rows: list[dict]) -> str:
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        columns = list(rows[0])
        path.write_text(",".join(columns) + "\n" + "".join(",".join(str(r[c]) for c in columns) + "\n" for r in rows))
    return str(path)


def test_a_table_file_opens_as_a_url_list_and_reads_with_retries(served, tmp_path):
    server, root = served
    table = _table(tmp_path, "urls.jsonl", [{"url": server.url("a.mp4"), "label": "x"},
                                            {"url": server.url("a.mp4") + "#t=0,1", "label": "y"},
                                            {"url": server.url("b.mp4"), "label": "y"}])
    with open_source(table, FAST) as source:
        assert isinstance(source, UrlListSource)
        assert [m.name for m in source.list_members()] == [server.url("a.mp4"), server.url("b.mp4")]
        server.set_faults(Faults(fail_first=2))  # 503, 503, then the body: urllib3's retries
        assert source.read(server.url("a.mp4")) == (root / "a.mp4").read_bytes()
        server.set_faults(Faults(drop_first=1))  # a connection dropped mid-body: retried whole
        assert source.read(server.url("b.mp4")) == (root / "b.mp4").read_bytes()
        server.set_faults(None)
        with pytest.raises(MemberReadError, match="HTTP 404"):
            source.read(server.url("missing.mp4"))
    small = SourceOptions(timeout=5, retries=0, max_member_bytes=1000)
    with open_source(table, small) as source, pytest.raises(MemberReadError, match="exceeds the member size cap"):
        source.read(server.url("a.mp4"))
    bad = _table(tmp_path, "bad.csv", [{"path": "ftp://host/a.mp4", "label": "x"}])
    with open_source(bad) as source, pytest.raises(SourceError, match="bad.csv line 2: 'ftp://host/a.mp4' is not an http"):
        source.list_members()


def test_shard_a_url_list_with_segments_and_failures_recorded(served, tmp_path):
    server, _ = served
    server.set_faults(Faults(fail_first=1))  # the first request fails once and is retried
    rows = [{"url": server.url("a.mp4"), "label": "walk", "split": "train", "start": "", "end": ""},
            {"url": server.url("b.mp4"), "label": "walk", "split": "train", "start": 0, "end": 1},
            {"url": server.url("b.mp4"), "label": "walk", "split": "train", "start": 0.5, "end": 1.5},
            {"url": server.url("c.mp4"), "label": "run", "split": "test", "start": "", "end": ""},
            {"url": server.url("d.mp4"), "label": "run", "split": "train", "start": "", "end": ""},
            {"url": server.url("gone.mp4"), "label": "run", "split": "test", "start": "", "end": ""}]
    table = _table(tmp_path, "urls.csv", rows)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["shard", table, str(out), "--split-by", "manifest", "--n-frames", "3",
                                       "--size", "16", "--retries", "2", "--direct_running_mode", "in_memory"])
    assert result.exit_code == 0, result.output
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["video_id"], e["stage"]) for e in errors] == [(server.url("gone.mp4"), "fetch")]
    assert "HTTP 404" in errors[0]["reason"]
    ids = {split: sorted(r.video_id for r in read_records(out, split)) for split in ("train", "test")}
    assert ids == {"train": sorted([server.url("a.mp4"), server.url("b.mp4") + "#t=0,1",
                                    server.url("b.mp4") + "#t=0.5,1.5", server.url("d.mp4")]),
                   "test": [server.url("c.mp4")]}
    listed = CliRunner().invoke(main, ["list", table, "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["classes_from"] == "manifest"


def test_a_file_with_several_segments_is_fetched_once(served, tmp_path):
    server, root = served
    server.set_faults(None)
    rows = [{"url": server.url("c.mp4"), "label": "walk", "start": start, "end": start + 0.5}
            for start in (0, 0.5, 1)] + [{"url": server.url("d.mp4"), "label": "run", "start": "", "end": ""}]
    table = _table(tmp_path, "segments.csv", rows)
    before = len(server.log)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["shard", table, str(out), "--splits", "train=1.0", "--n-frames", "3",
                                       "--size", "16", "--direct_running_mode", "in_memory"])
    assert result.exit_code == 0, result.output
    gets = sorted(entry.path for entry in server.log[before:] if entry.method == "GET")
    assert gets == ["/c.mp4", "/d.mp4"]  # three segments of c.mp4, one GET
    assert len(read_records(out, "train")) == 4
    served_bytes = sum(entry.body_bytes for entry in server.log[before:] if entry.method == "GET")
    assert served_bytes == (root / "c.mp4").stat().st_size + (root / "d.mp4").stat().st_size
