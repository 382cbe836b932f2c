"""Issue 21: ``vidshard shard ... --runner DataflowRunner --dry_run True`` translates the job and writes it.

No network and no Google Cloud account: the job is built and written, nothing is submitted, and
the ``gs://`` DATA_DIR is never touched.  To prove the last, Google Cloud Storage is pointed at a
port where nothing listens (``STORAGE_EMULATOR_HOST``): any listing or write there would fail the
command at once.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("apache_beam.runners.dataflow.internal.apiclient",
                    reason="the Dataflow tests need apache-beam[gcp]: pip install -e '.[gcp]'")

from apache_beam.portability.api import beam_runner_api_pb2  # noqa: E402

from vidshard.testing.clusters import free_port  # noqa: E402

from test_pipeline import OPTIONS, assert_one_line_error, shard, source  # noqa: E402,F401 (source: a fixture)

SETUP = str(Path(__file__).resolve().parents[1] / "setup.py")
DATAFLOW = ["--runner", "DataflowRunner", "--project", "demo-project", "--region", "us-central1",
            "--temp_location", "gs://vidshard-test/tmp", "--setup_file", SETUP,
            "--num_workers", "3", "--max_num_workers", "7", "--machine_type", "n2-standard-4"]


@pytest.fixture
def no_storage(monkeypatch):
    """Google Cloud Storage at a closed loopback port: touching a bucket fails at once."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")


def test_dry_run_writes_the_job_with_vidshards_stages_and_the_users_options(source, no_storage, tmp_path):
    url, _ = source
    job_file = tmp_path / "job.json"
    result = shard(url, "gs://vidshard-test/out", *OPTIONS, *DATAFLOW, "--dry_run", "True",
                   "--dataflow_job_file", str(job_file))
    assert result.exit_code == 0, result.output
    assert "Dry run: DataflowRunner translated the job for 14 videos and submitted nothing" in result.stdout
    assert f"Dataflow job written to {job_file}" in result.stdout and "Complete:" not in result.stdout
    job = json.loads(job_file.read_text())
    environment = job["environment"]
    options = environment["sdkPipelineOptions"]["options"]
    assert options["setup_file"] == SETUP and options["runner"] == "DataflowRunner"
    assert options["project"] == "demo-project" and options["save_main_session"] is False
    (pool,) = environment["workerPools"]
    assert pool["numWorkers"] == 3 and pool["autoscalingSettings"]["maxNumWorkers"] == 7
    assert pool["machineType"] == "n2-standard-4"
    # The pipeline the job names holds vidshard's stages.
    staged = environment["sdkPipelineOptions"]["options"]["pipelineUrl"]
    assert staged == f"{job_file}.pipeline.pb"
    pipeline = beam_runner_api_pb2.Pipeline.FromString(Path(staged).read_bytes())
    names = {transform.unique_name for transform in pipeline.components.transforms.values()}
    assert {"ShardVideos", "ShardVideos/FetchDecodeEncode", "ShardVideos/Distribute",
            "ShardVideos/WriteShards/GroupByShard", "ShardVideos/WriteShards/WriteShardFiles"} <= names


def test_dry_run_without_a_job_file_says_how_to_write_one(source, no_storage):
    result = shard(source[0], "gs://vidshard-test/out", *OPTIONS, *DATAFLOW, "--dry_run", "True")
    assert result.exit_code == 0, result.output
    assert "Pass --dataflow_job_file FILE to write the job" in result.stdout


def test_dry_run_on_another_runner_and_with_overwrite_are_one_line(source, tmp_path):
    result = shard(source[0], str(tmp_path / "out"), *OPTIONS, "--dry_run", "True")
    assert_one_line_error(result, "--dry_run is the DataflowRunner's: DirectRunner ignores it")
    assert not (tmp_path / "out").exists()
    result = shard(source[0], str(tmp_path / "out"), *OPTIONS, *DATAFLOW, "--dry_run", "True", "--overwrite")
    assert_one_line_error(result, "a dry run (--dry_run True) writes nothing to the output: drop --overwrite")
