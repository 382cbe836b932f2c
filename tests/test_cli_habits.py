"""One CLI, one set of habits: the same mistake reads the same in every ``vidshard`` command.

An unknown option is click's usage error in every command (exit status 2, ``No such option``
with a did-you-mean), ``shard`` included, whose unknown options are first looked up among Beam's;
a missing shard or run directory is click's ``Directory '...' does not exist.``, exit status 2.
Nothing here needs shards: click refuses before a command runs.
"""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from vidshard.bench.train_step import BenchTrainConfig, bench_train_command
from vidshard.cli import main
from vidshard.models.backend import DEFAULT_BACKEND

#: Every command, a command line of it with one option misspelt, that option, and what click suggests.
TYPOS = {
    "list": (["SRC", "--jsn"], "--jsn", "--json"),
    "shard": (["SRC", "OUT", "--n-frame", "8"], "--n-frame", "--n-frames"),
    "inspect": (["DATA", "--verfy"], "--verfy", "--verify"),
    "preview": (["DATA", "--out", "x.gif", "--scal", "2"], "--scal", "--scale"),
    "train": (["DATA", "RUN", "--epoch", "3"], "--epoch", "--epochs"),
    "evaluate": (["RUN", "--splt", "test"], "--splt", "--split"),
    "demo": (["--workdr", "x"], "--workdr", "--workdir"),
    "bench": (["--vidoes", "3"], "--vidoes", "--videos"),
    "bench-train": (["DATA", "--stps", "3"], "--stps", "--steps"),
    "export-tfds": (["DATA", "--too", "x"], "--too", "--to"),
    "audit": (["DATA", "--outt", "x.html"], "--outt", "--out"),
}


def invoke(*args: str):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def test_every_command_is_covered():
    assert set(TYPOS) == set(main.commands)


@pytest.mark.parametrize("command", sorted(TYPOS))
def test_an_option_typo_reads_the_same_in_every_command(command):
    args, typo, suggestion = TYPOS[command]
    result = invoke(command, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Usage: main {command} [OPTIONS]"), result.stderr
    assert f"Error: No such option '{typo}'." in result.stderr and f"'{suggestion}'" in result.stderr, result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [
    ["inspect", "{missing}"],
    ["inspect", "{missing}", "--verify"],
    ["preview", "{missing}", "--out", "x.gif"],
    ["train", "{missing}", "run"],
    ["evaluate", "{missing}"],
    ["evaluate", "{existing}", "--data-dir", "{missing}"],
    ["bench-train", "{missing}"],
    ["export-tfds", "{missing}"],
    ["audit", "{missing}"],
])
def test_a_missing_directory_reads_the_same_in_every_command(args, tmp_path):
    missing = tmp_path / "nonexistent"
    result = invoke(*(arg.format(missing=missing, existing=tmp_path) for arg in args))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1].endswith(f"Directory '{missing}' does not exist."), result.stderr
    assert not (tmp_path / "run").exists()


def test_demo_refuses_a_workdir_that_is_not_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke("demo", "--workdir", tmp_path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"Error: --workdir {tmp_path} is not empty; pass --overwrite to redo the "
                                          "demo there (its source/, shards/ and run/ are replaced)"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_bench_train_is_a_click_command_with_trains_defaults(tmp_path):
    result = invoke("bench-train", "--help")
    assert result.exit_code == 0 and result.output.startswith("Usage: main bench-train [OPTIONS] DATA_DIR")
    words = " ".join(result.output.split())  # help text wraps anywhere
    assert "[default: tensorflow]" in words and "--batch-sizes N,N" in words
    assert {param.name: param.default for param in bench_train_command.params}["backend"] == DEFAULT_BACKEND
    assert BenchTrainConfig(data_dir="").backend == DEFAULT_BACKEND
    for option, value in (("--batch-sizes", "8,0"), ("--dtypes", "float64"), ("--steps", "0")):
        result = invoke("bench-train", tmp_path, option, value)
        assert result.exit_code == 2 and f"Error: Invalid value for '{option}'" in result.stderr, result.output


def test_cli_wording_writes_each_library_field_as_its_option():
    from vidshard.cli.wording import cli_wording

    assert cli_wording("give either `num_classes` or `classes`, not both") == \
        "give either --num-classes or --classes, not both"
    assert cli_wording("`split_by` folder keeps them") == "--split-by folder keeps them"
    assert cli_wording("run has no config.json naming its data; pass `data_dir`") == \
        "run has no config.json naming its data; pass --data-dir"
    assert cli_wording("no field here, ``literal`` kept") == "no field here, ``literal`` kept"


@pytest.mark.parametrize("value, library, user", [
    ("train=0", "`splits` train=0: must be positive", "Error: --splits train=0: must be positive"),
    ("", "`splits` is empty", "Error: --splits is empty"),
])
def test_library_errors_name_their_field_and_the_cli_names_its_option(value, library, user, tmp_path):
    from vidshard.catalog import parse_splits
    from vidshard.errors import CatalogError

    with pytest.raises(CatalogError) as raised:
        parse_splits(value)
    assert str(raised.value).startswith(library) and "--" not in str(raised.value)
    result = invoke("shard", tmp_path / "src.zip", tmp_path / "out", "--splits", value)
    assert result.exit_code == 2 and result.stderr.splitlines()[-1].startswith(user), result.stderr


# --- issue 19: one exit status for a bad value, in every command ------------------------------------

#: A value wrong on its face, in every command that takes values: click's usage error, exit status 2,
#: before any work (no output folder, no generated videos).  The last stderr line is the message.
BAD_VALUES = [
    (["shard", "S", "{out}", "--size", "64x"], "Invalid value for '--size': '64x': expected N or HxW, e.g. 224 or "
                                                "180x320"),
    (["shard", "S", "{out}", "--n-frames", "0"], "Invalid value for '--n-frames': 0 is not in the range x>=1."),
    (["shard", "S", "{out}", "--quality", "101"], "Invalid value for '--quality': 101 is not in the range 1<=x<=100."),
    (["shard", "S", "{out}", "--encoding", "gif"], "Invalid value for '--encoding': 'gif' is not one of 'jpeg', "
                                                   "'png', 'raw'."),
    (["shard", "S", "{out}", "--shards", "none"], "Invalid value for '--shards': 'none': expected auto or a whole "
                                                  "number of at least 1"),
    (["shard", "S", "{out}", "--seed", "x"], "Invalid value for '--seed': 'x' is not a valid integer."),
    (["shard", "S", "{out}", "--fps", "zero"], "Invalid value for '--fps': 'zero' is not a number"),
    (["shard", "S", "{out}", "--num-classes", "0"], "Invalid value for '--num-classes': 0 is not in the range x>=1."),
    (["shard", "S", "{out}", "--num-classes", "2", "--classes", "A"], "give either --num-classes or --classes, not "
                                                                      "both"),
    (["shard", "S", "{out}", "--splits", "train=0"], "--splits train=0: must be positive"),
    (["shard", "S", "{out}", "--group-pattern", "a"], "--group-pattern 'a' has no (group): put the part of the file "
                                                      "name that names the group in parentheses, e.g. '^(.+)_c\\d+\\.'"),
    (["shard", "S", "{out}", "--sampling", "time"], "--sampling time needs --fps F or --clip-seconds S"),
    (["shard", "S", "{out}", "--compression", "gzip", "--format", "array_record"],
     "--compression gzip applies to TFRecord files; ArrayRecord compresses its own chunks (zstd): leave "
     "--compression none"),
    (["list", "S", "--group-pattern", "("], "--group-pattern '(' is not a regular expression (missing ), "
                                           "unterminated subpattern at position 0)"),
    (["train", "{data}", "{out}", "--batch-size", "0"], "Invalid value for '--batch-size': 0 is not in the range "
                                                        "x>=1."),
    (["evaluate", "{data}", "--batch-size", "0"], "Invalid value for '--batch-size': 0 is not in the range x>=1."),
    (["preview", "{data}", "--out", "{out}", "--scale", "0"], "Invalid value for '--scale': 0 is not in the range "
                                                              "1<=x<=16."),
    (["demo", "--workdir", "{out}", "--epochs", "0"], "Invalid value for '--epochs': 0 is not in the range x>=1."),
    (["bench", "--workdir", "{out}", "--videos", "0"], "Invalid value for '--videos': 0 is not in the range x>=1."),
    (["bench", "--workdir", "{out}", "--video-size", "64x"], "Invalid value for '--video-size': '64x': expected N or "
                                                             "HxW, e.g. 224 or 180x320"),
    (["bench-train", "{data}", "--steps", "0"], "Invalid value for '--steps': 0 is not in the range x>=1."),
]


@pytest.mark.parametrize("args, message", BAD_VALUES, ids=[" ".join(args[:1] + args[-2:]) for args, _ in BAD_VALUES])
def test_a_bad_value_is_clicks_usage_error_with_exit_status_2_in_every_command(args, message, tmp_path):
    out = tmp_path / "out"
    result = invoke(*(arg.format(out=out, data=tmp_path) for arg in args))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Usage: main {args[0]} ") and result.stderr.splitlines()[-1] == f"Error: {message}"
    assert "Traceback" not in result.output and not out.exists()


def test_every_option_of_every_command_says_what_it_does():
    """``--help`` explains every option: train's --batch-size and --shuffle-buffer and evaluate's --split had no text."""
    silent = [f"{name} {param.opts[0]}" for name, command in main.commands.items() for param in command.params
              if isinstance(param, click.Option) and not param.hidden and not param.help]
    assert silent == []


def test_seed_help_says_it_also_chooses_the_clips():
    words = " ".join(invoke("shard", "--help").output.split())
    assert "--seed INT Seeds the split (the group order of --split-by group, the val carved out of fixed splits) " \
           "and the clips" in words
