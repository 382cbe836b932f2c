"""Dataflow dry runs: translate the pipeline into a Dataflow job, write it, submit nothing, touch no storage.

Beam's ``--dry_run True`` makes the DataflowRunner build the job (the translated stages and the
options a user gave: ``--setup_file``, ``--num_workers``, ...) and return without submitting it;
it does not write ``--dataflow_job_file`` then (Beam writes that file only on its way to
submitting).  For a dry run the launcher therefore does nothing with DATA_DIR (no listing of the
bucket, which without Google credentials waits about 120 s and fails; no staging folder), runs
the translation, and writes the job here.  Other runners ignore ``--dry_run`` and would run the
whole job, so there it is refused.  Needs ``apache-beam[gcp]`` (``pip install 'vidshard[gcp]'``);
no network and no Google Cloud account.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DebugOptions, PipelineOptions, StandardOptions, TestOptions
from apache_beam.runners.runner import PipelineResult

from vidshard.errors import VidshardError


def is_dry_run(beam_args: Sequence[str]) -> bool:
    """Whether ``beam_args`` ask the DataflowRunner for a dry run; ``--dry_run`` on another runner is refused."""
    options = PipelineOptions(list(beam_args))
    if not options.view_as(TestOptions).dry_run:
        return False
    runner = (options.view_as(StandardOptions).runner or "DirectRunner").rsplit(".", 1)[-1]
    if runner.lower().removesuffix("runner") != "dataflow":
        raise VidshardError(f"--dry_run is the DataflowRunner's: {runner} ignores it and would run the whole job; "
                            "drop --dry_run, or pass --runner DataflowRunner")
    return True


def check_dry_run_output(overwrite: bool, resume: bool) -> None:
    """A dry run writes nothing to DATA_DIR, so it takes neither ``overwrite`` nor ``resume``."""
    if overwrite or resume:
        raise VidshardError(f"a dry run (--dry_run True) writes nothing to the output: drop "
                            f"`{'overwrite' if overwrite else 'resume'}`")


def write_job(result: PipelineResult, beam_args: Sequence[str]) -> str | None:
    """Write the translated job to ``--dataflow_job_file`` and its pipeline beside it; return the job's path.

    The job is the JSON Beam would submit, with the environment that Beam fills in on its way to
    submitting (the user's options, the worker pool: ``--num_workers``, ``--machine_type``, ...),
    built here without staging anything.  Beam would stage the pipeline proto as
    ``pipeline.pb`` under ``--staging_location``; here it goes to ``FILE.pipeline.pb``, which the
    job names.  The SDK package (``--setup_file``) is built and staged only on submission.
    """
    path = PipelineOptions(list(beam_args)).view_as(DebugOptions).dataflow_job_file
    job = getattr(result, "job", None)
    if not path or job is None:
        return None
    # Imported here: the gcp extra's client is only needed for a dry run's job file.
    from apache_beam.runners.dataflow.internal import apiclient

    apiclient.DataflowApplicationClient._apply_sdk_environment_overrides(job.proto_pipeline, {}, job.options)
    pipeline = job.proto_pipeline.SerializeToString()
    pipeline_path = f"{path}.pipeline.pb"
    job.proto.environment = apiclient.Environment(
        packages=[], options=job.options, environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,
        proto_pipeline_staged_url=pipeline_path, proto_pipeline=job.proto_pipeline,
        pipeline_proto_hash=hashlib.sha256(pipeline).hexdigest()).proto
    for target, data in ((pipeline_path, pipeline), (path, job.json().encode("utf-8"))):
        with FileSystems.create(target, compression_type=CompressionTypes.UNCOMPRESSED) as out:
            out.write(data)
    return path
