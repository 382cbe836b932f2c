"""``vidshard list`` over a local zip, a folder and HTTP Range; the shared selection options; error paths."""
from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
import zipfile

import click
import pytest
from click.testing import CliRunner

from vidshard.catalog import build_catalog
from vidshard.cli import _Group, main
from vidshard.cli.selection import plan_from_options, selection_options
from vidshard.testing.rangeserver import Faults
from vidshard.sources import open_source


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result, *fragments: str) -> None:
    """Exit 1, nothing on stdout, exactly one ``Error: ...`` line, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def expected_rows(zip_path) -> dict[str, tuple[int, int, int]]:
    """Class -> (videos, groups, bytes), computed with zipfile independently of vidshard."""
    videos, groups, sizes = collections.Counter(), collections.defaultdict(set), collections.Counter()
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            base = info.filename.rsplit("/", 1)[-1]
            if base.startswith("v_") and base.endswith(".avi"):
                _, cls, group, _ = base.split("_")
                videos[cls] += 1
                groups[cls].add(group)
                sizes[cls] += info.file_size
    return {cls: (videos[cls], len(groups[cls]), sizes[cls]) for cls in videos}


def settled_log(server, quiet: float = 0.2, limit: float = 5.0) -> list:
    """The server's log once it stops growing: it records a request after sending the body, so the
    last record can trail the client by a moment."""
    deadline, seen = time.monotonic() + limit, -1
    while time.monotonic() < deadline:
        log = server.log
        if log and len(log) == seen:
            return log
        seen = len(log)
        time.sleep(quiet)
    return server.log


def test_list_local_zip_counts(ucf_zip):
    path, _ = ucf_zip
    result = run("list", str(path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"source: {path}"
    assert lines[1] == "classes from: UCF101 file names (v_<Class>_g<GG>_c<CC>)"
    assert lines[2].split() == ["class", "videos", "groups", "bytes"]
    rows = {line.split()[0]: line.split()[1:3] for line in lines[3:6]}
    assert rows == {"MoveDown": ["6", "3"], "MoveDownRight": ["6", "3"], "MoveRight": ["6", "3"]}
    assert lines[6].split()[:5] == ["total", "(3", "classes)", "18", "9"]
    assert lines[7] == "video members not named v_<Class>_g<GG>_c<CC>: 0"
    assert len(lines) == 8 and result.stderr == ""


def test_list_json_matches_the_zip(ucf_zip):
    path, _ = ucf_zip
    result = run("list", str(path), "--json")
    assert result.exit_code == 0 and result.stderr == ""
    summary = json.loads(result.stdout)
    rows = {row["name"]: (row["videos"], row["groups"], row["bytes"]) for row in summary["classes"]}
    assert rows == expected_rows(path)
    assert [row["name"] for row in summary["classes"]] == sorted(rows)
    assert summary["total"] == {
        "classes": 3, "videos": 18, "groups": 9, "bytes": sum(size for _, _, size in rows.values())
    }
    assert summary["unmatched"] == {"count": 0, "names": []}
    assert summary["source"] == str(path)


def test_list_over_http_equals_local_and_uses_ranges_only(ucf_zip, ucf_http):
    path, _ = ucf_zip
    url, server = ucf_http
    local = json.loads(run("list", str(path), "--json").stdout)
    result = run("list", url, "--json")
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    remote = json.loads(result.stdout)
    assert remote["source"] == url
    assert {**remote, "source": None} == {**local, "source": None}
    log = settled_log(server)
    assert log and all(entry.status == 206 for entry in log if entry.method == "GET")
    assert sum(entry.body_bytes for entry in log) < path.stat().st_size  # the listing never downloads the zip


def test_list_reports_unmatched_names(tmp_path):
    path = tmp_path / "mixed.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("UCF101/v_Archery_g01_c01.avi", "UCF101/v_Archery_g02_c01.avi", "UCF101/clip7.avi",
                     "UCF101/v_Archery_g3_c1_x.mp4", "UCF101/readme.txt"):
            archive.writestr(name, b"not decoded by list")
    text = run("list", str(path))
    assert text.exit_code == 0
    assert "video members not named v_<Class>_g<GG>_c<CC>: 2 (--json lists them)" in text.stdout
    summary = json.loads(run("list", str(path), "--json").stdout)
    assert summary["unmatched"] == {"count": 2, "names": ["UCF101/clip7.avi", "UCF101/v_Archery_g3_c1_x.mp4"]}
    assert summary["classes"] == [{"name": "Archery", "videos": 2, "groups": 2, "bytes": 38}]


def test_list_folder_in_tutorial_layout(tmp_path):
    for split, cls, group in (("train", "Archery", 1), ("train", "Biking", 1), ("test", "Archery", 2)):
        folder = tmp_path / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"v_{cls}_g{group:02d}_c01.avi").write_bytes(b"1234")
    summary = json.loads(run("list", str(tmp_path), "--json").stdout)
    assert summary["classes"] == [
        {"name": "Archery", "videos": 2, "groups": 2, "bytes": 8},
        {"name": "Biking", "videos": 1, "groups": 1, "bytes": 4},
    ]


def bad_source(tmp_path, kind: str) -> str:
    if kind == "missing":
        return str(tmp_path / "missing.zip")
    if kind == "not a zip":
        (tmp_path / "notes.zip").write_text("plain text")
        return str(tmp_path / "notes.zip")
    if kind == "no videos":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "readme.txt").write_text("no videos here")
        return str(tmp_path / "empty")
    return "ftp://example.org/UCF101.zip"


@pytest.mark.parametrize("kind, fragments", [
    ("missing", ("not found", "missing.zip")),
    ("not a zip", ("not a zip",)),
    ("no videos", ("no video members",)),
    ("unsupported scheme", ("unsupported source",)),
])
def test_list_error_paths(tmp_path, kind, fragments):
    source = bad_source(tmp_path, kind)
    assert_one_line_error(run("list", source), *fragments)
    assert_one_line_error(run("list", source, "--json"), *fragments)


def test_list_http_errors(ucf_http):
    url, server = ucf_http
    assert_one_line_error(run("list", url.replace("sample.zip", "nothing.zip")), "404")
    server.set_faults(Faults(ignore_range=True))
    assert_one_line_error(run("list", url), "Range")


def test_real_process_prints_one_line_or_clean_json(tmp_path, ucf_zip):
    """Outside CliRunner too: import-time warnings or logging would break both promises."""
    command = [sys.executable, "-m", "vidshard.cli", "list"]
    failed = subprocess.run([*command, str(tmp_path / "missing.zip")], capture_output=True, text=True)
    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr == f"Error: source not found: {tmp_path / 'missing.zip'}\n"
    listed = subprocess.run([*command, str(ucf_zip[0]), "--json"], capture_output=True, text=True)
    assert (listed.returncode, listed.stderr) == (0, "")
    assert json.loads(listed.stdout)["total"]["videos"] == 18


# --- the shared selection options, on a command that plans from a source ------------------------------

@click.group(cls=_Group)
def cli() -> None:
    """The real group class, so VidshardError becomes one line as under ``vidshard``."""


@cli.command("plan")
@click.argument("source")
@selection_options
def plan_command(source: str, **options) -> None:
    with open_source(source) as opened:
        catalog = build_catalog(opened.list_members())
    plan = plan_from_options(catalog, **options)
    click.echo(json.dumps({"counts": plan.counts(), "policy": plan.policy, "seed": plan.seed,
                           "request": plan.request, "notes": list(plan.notes)}))


def plan(*args: str):
    return CliRunner().invoke(cli, ["plan", *args])


def test_selection_defaults_are_the_tutorials(ucf_zip):
    path, _ = ucf_zip
    result = plan(str(path))  # train=30,val=10,test=10 cannot fit 6 videos per class
    assert_one_line_error(
        result, "--splits train=30,val=10,test=10 asks for 50 videos per class", "MoveDown has 6 videos in 3 groups"
    )


def test_selection_options_plan(ucf_zip):
    path, _ = ucf_zip
    result = plan(str(path), "--num-classes", "2", "--splits", "train=4,test=2", "--seed", "9")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["counts"] == {"train": {"MoveDown": 4, "MoveDownRight": 4}, "test": {"MoveDown": 2, "MoveDownRight": 2}}
    assert (out["policy"], out["seed"], out["request"], out["notes"]) == ("group", 9, "train=4,test=2", [])
    result = plan(str(path), "--classes", "MoveRight,MoveDown", "--splits", "a=0.5,b=0.5", "--split-by", "order")
    out = json.loads(result.stdout)
    assert out["counts"] == {"a": {"MoveDown": 3, "MoveRight": 3}, "b": {"MoveDown": 3, "MoveRight": 3}}
    assert out["policy"] == "order"


@pytest.mark.parametrize("args, fragments", [
    (["--num-classes", "0"], ("Invalid value for '--num-classes': 0 is not in the range x>=1.",)),
    (["--num-classes", "-2"], ("Invalid value for '--num-classes': -2 is not in the range x>=1.",)),
    (["--num-classes", "two"], ("Invalid value for '--num-classes': 'two' is not a valid integer",)),
    (["--num-classes", "2", "--classes", "A"], ("not both",)),
    (["--classes", "A", "--num-classes", "2"], ("not both",)),
    (["--classes", "A,,B"], ("empty class name",)),
    (["--splits", "train=30,val=x"], ("not a number",)),
    (["--splits", "train=0"], ("must be positive",)),
    (["--splits", "train=0.8,val=0.3"], ("more than 1",)),
    (["--split-by", "random"], ("Invalid value for '--split-by': 'random' is not one of 'group', 'order'",)),
    (["--seed", "1.5"], ("Invalid value for '--seed': '1.5' is not a valid integer.",)),
])
def test_bad_selection_options_fail_before_the_source_is_opened(tmp_path, args, fragments):
    # The source does not exist: the option error must come first, before any work; a bad value is
    # click's usage error (exit status 2), as in every command.
    result = plan(str(tmp_path / "missing.zip"), *args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: ") and all(fragment in last for fragment in fragments), result.stderr


def test_selection_errors_that_need_the_listing(ucf_zip):
    path, _ = ucf_zip
    assert_one_line_error(plan(str(path), "--classes", "MoveDwn", "--splits", "t=1"), "did you mean MoveDown")
    assert_one_line_error(plan(str(path), "--num-classes", "4", "--splits", "t=1"), "more classes than")
