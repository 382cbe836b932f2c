"""The job's own last step: once every shard is written, finish the output, so that a job outlives its launcher.

Before issue 21 only the launching process wrote ``errors.jsonl`` and ``dataset_info.json``,
after ``wait_until_finish``: the laptop that launched a six-hour Dataflow job had to stay up.
:class:`Finalize` is the pipeline's last transform.  It waits for the summary of every written
shard (one group of all of them), then calls the launcher's ``finish`` function, which accounts
for every planned video (each in exactly one shard or in ``errors.jsonl``), writes
``errors.jsonl`` and then ``dataset_info.json``, last, and does nothing when that file is
already there.  An attached launcher calls the same function again after the job: it finds the
output finished and only reads what it reports.  A ``--detach``-ed job also removes the staging
folder; attached, the launcher does (its progress bar reads that folder until the end).

If the output does not add up, this step logs why on the worker and leaves ``dataset_info.json``
unwritten, so the output stays visibly incomplete; an attached launcher then reports the same
reason in one line.

:func:`check_detach` refuses ``--detach`` where there is nothing to detach from: runners that
run the job inside the launcher, and Spark and Flink without a job server of their own (the
launcher starts Beam's job server and stops it when it exits; a Spark job runs inside it).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

from vidshard.pipelines import shardio
from vidshard.errors import VidshardError

_LOGGER = logging.getLogger(__name__)

#: Runners that run the job inside the launching process: ``--detach`` has nothing to detach from.
IN_PROCESS_RUNNERS = ("direct", "bundlebaseddirect", "switchingdirect", "fnapi", "interactive", "prism")


def _one_key(summary: dict[str, Any]) -> tuple[None, dict[str, Any]]:
    return None, summary


class _FinishFn(beam.DoFn):
    """Calls ``finish(*args)`` once, after the group of all shard summaries; optionally removes the staging folder."""

    def __init__(self, finish: Callable[..., object], args: tuple, cleanup_dir: str | None) -> None:
        super().__init__()
        self._finish = finish
        self._args = args
        self._cleanup_dir = cleanup_dir

    def process(self, element: tuple[None, Any]) -> Iterator[str]:
        try:
            self._finish(*self._args)
        except VidshardError as exc:
            _LOGGER.error("vidshard: the output is not marked complete: %s", exc)
            return
        if self._cleanup_dir is not None:
            shardio.remove_tree(FileSystems.join(self._cleanup_dir, shardio.TMP_DIR))
        yield "finished"


class Finalize(beam.PTransform):
    """Shard summaries in; once all are there, ``finish(*args)`` marks the output complete.

    ``finish`` must be a module-level function (workers unpickle it by reference) that is
    idempotent.  ``cleanup_dir``: remove ``cleanup_dir/.vidshard-tmp`` afterwards (detached jobs).
    """

    def __init__(self, finish: Callable[..., object], args: Sequence[Any], cleanup_dir: str | None = None) -> None:
        super().__init__()
        self._finish = finish
        self._args = tuple(args)
        self._cleanup_dir = cleanup_dir

    def expand(self, summaries: beam.PCollection) -> beam.PCollection:
        return (
            summaries
            | "OneGroup" >> beam.Map(_one_key)
            # A group of every summary: it exists only once every shard is written.
            | "AllShardsWritten" >> beam.GroupByKey()
            | "FinishOutput" >> beam.ParDo(_FinishFn(self._finish, self._args, self._cleanup_dir))
        )


def check_detach(beam_args: Sequence[str]) -> None:
    """``--detach`` needs a job that runs outside the launcher and a job server that outlives it."""
    options = PipelineOptions(list(beam_args))
    runner = (options.view_as(StandardOptions).runner or "DirectRunner").rsplit(".", 1)[-1]
    name = runner.lower().removesuffix("runner")
    portable = options.view_as(PortableOptions)
    if name in IN_PROCESS_RUNNERS or (name == "portable" and portable.job_endpoint in (None, "embed")):
        raise VidshardError(f"`detach`: {runner} runs the job in this process, which cannot return before it is "
                            "done; detach from Dataflow, Flink, or a portable job server (--job_endpoint HOST:PORT)")
    if name in ("spark", "flink") and not portable.job_endpoint:
        raise VidshardError(f"`detach`: {runner} needs Beam's job server to outlive this launcher, which otherwise "
                            "starts and stops it (on Spark the job itself runs in it); start one (python -m "
                            "vidshard.testing.clusters start ... --job-server) and pass --job_endpoint HOST:PORT")
