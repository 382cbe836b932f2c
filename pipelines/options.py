"""Beam's options for a sharding job: checked before any work, then completed for the runner.

Beam drops an option it does not know with a warning and would run a different job
(``--runer DataflowRunner`` on the DirectRunner): :func:`check_beam_args` refuses it with the
closest names.  :func:`pipeline_options` sizes the default DirectRunner to the job, and
:func:`dask_defaults` gives the DaskRunner its partitions.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
import os
from typing import Sequence

from apache_beam.options.pipeline_options import (
    DirectOptions, PipelineOptions, SetupOptions, StandardOptions, WorkerOptions,
)
from apache_beam.runners.runner import PipelineRunner

from vidshard.errors import CommandLineError, VidshardError
from vidshard.pipelines import jobserver


#: Runners that Beam knows only by module path; vidshard accepts their short names too
#: (:func:`check_runner` checks them, :func:`pipeline_options` maps them).
RUNNER_PATHS = {"DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner"}


def _beam_parser() -> argparse.ArgumentParser:
    """The argument parser that ``PipelineOptions`` builds from every options class of Beam's SDK.

    Beam hands it to ``add_extra_args_fn``; with ``exit_on_error`` off a bad value raises
    ``ArgumentError`` instead of printing argparse's usage and exiting.
    """
    parsers: list[argparse.ArgumentParser] = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=parsers.append)
    parser = parsers[0]
    parser.exit_on_error = False
    return parser


def _defines(parser: argparse.ArgumentParser, name: str) -> bool:
    """Whether Beam's parser has an option spelt ``name`` (a flag, or an option that takes a value)."""
    try:
        return name not in parser.parse_known_args([name])[1]
    except argparse.ArgumentError:  # "expected one argument": an option that takes a value
        return True


def _close_options(parser: argparse.ArgumentParser, name: str, own_options: Sequence[str]) -> tuple[str, ...]:
    """vidshard and Beam option names close to the unknown ``name``, closest first.

    Beam's names are spelt from its option destinations (``--runner``, ``--no_save_main_session``,
    ``--experiment``, ``--job-server-timeout``) and kept only where Beam's parser defines them.
    """
    spellings = set()
    for dest in vars(parser.parse_known_args([])[0]).keys() - {"help"}:  # parsing --help would exit
        for stem in (dest, dest.removesuffix("s")):
            spellings |= {f"--{stem}", f"--no_{stem}", f"--{stem.replace('_', '-')}"}
    close = difflib.get_close_matches(name, [*own_options, *sorted(spellings)], n=8, cutoff=0.75)
    return tuple(option for option in close if option in own_options or _defines(parser, option))[:3]


def check_runner(runner: str | None) -> None:
    """Refuse a ``--runner`` that Beam cannot load, in one line naming the runners that exist.

    Beam takes its runners' class names in any case, with or without ``Runner``
    (``dataflow``), or the full module path of a ``PipelineRunner`` subclass.  The runner's
    module is imported here, before any work: a runner whose extra is not installed
    (``DataflowRunner`` without ``apache-beam[gcp]``) fails now rather than after listing.
    """
    if runner is None:
        return
    names = [*StandardOptions.KNOWN_RUNNER_NAMES, *RUNNER_PATHS]
    paths = {path.rsplit(".", 1)[-1].lower(): path
             for path in (*StandardOptions.ALL_KNOWN_RUNNERS, *RUNNER_PATHS.values())}
    path = paths.get(runner.lower(), paths.get(runner.lower() + "runner", runner))
    if "." not in path:
        close = difflib.get_close_matches(runner, names, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise VidshardError(f"--runner {runner}: no such runner{hint}; Beam's runners are {', '.join(names)}, "
                            "or the full module path of a PipelineRunner class")
    module, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError as exc:
        raise VidshardError(f"--runner {runner} cannot be loaded: {exc}; is the extra it needs installed "
                            "(apache-beam[gcp] for Dataflow, apache-beam[dask] for Dask)?") from None
    if not (isinstance(found, type) and issubclass(found, PipelineRunner)):
        raise VidshardError(f"--runner {runner}: {module} has no PipelineRunner class {name}")


def check_beam_args(beam_args: Sequence[str], own_options: Sequence[str] = (),
                    unchecked: Sequence[str] = ()) -> None:
    """Refuse what is neither a vidshard nor a Beam option, and a runner Beam lacks, before any work.

    ``beam_args`` are what vidshard did not take itself: every option in them must be one that
    Beam's Python SDK defines (hyphenated or snake_case, misspelt or not), otherwise Beam would
    drop it with a warning and run a different job (``--runer DataflowRunner`` on the
    DirectRunner).  A stray word that is no option's value is refused too.  Both raise
    :class:`CommandLineError` with the closest vidshard or Beam option names.

    ``unchecked`` (what follows a lone ``--`` on the command line) goes to Beam as it is: options
    that only a runner's job server knows (Flink, Spark).  Its values are still checked where
    Beam defines the option, and ``--runner`` wherever it is.
    """
    try:
        # The runner first: importing its module registers the options it defines (Beam's
        # DaskOptions exist only once apache_beam.runners.dask.dask_runner is imported).
        check_runner(_beam_parser().parse_known_args([*beam_args, *unchecked])[0].runner)
        parser = _beam_parser()
        _, leftover = parser.parse_known_args(list(beam_args))
        parser.parse_known_args([*beam_args, *unchecked])
    except argparse.ArgumentError as exc:
        raise VidshardError(f"Beam option {exc.argument_name}: {exc.message}") from None
    for arg in leftover:
        if arg.startswith("-"):
            name = arg.split("=", 1)[0]
            raise CommandLineError(f"No such option: {name}", name, _close_options(parser, name, own_options))
    if leftover:
        raise CommandLineError(f"Got unexpected extra argument ({leftover[0]})")


#: Up to this many videos to process, the default DirectRunner runs the job in this process
#: (``in_memory``, one thread per core: OpenCV decodes and encodes without holding the GIL).
#: Starting one worker process per core costs about 2 s more, which on 2 cores the processes
#: did not win back even at 500 UCF101-shaped videos (12.0 s in process against 14.0 s; 64
#: videos: 2.8 s against 4.5 s; docs/benchmarks.md).  Past it, worker processes: a thread pool
#: is bounded by the Python-side work per video that holds the GIL, and many cores pay for it.
IN_PROCESS_MAX_VIDEOS = 500


def pipeline_options(beam_args: Sequence[str], videos: int | None = None) -> PipelineOptions:
    """Beam options as given; without ``--runner``, the DirectRunner, sized to the job.

    A job of more than :data:`IN_PROCESS_MAX_VIDEOS` videos (or of unknown size) runs in
    ``multi_processing`` mode with one worker process per core; a smaller one in this process
    (``in_memory``, one worker thread per core).  The output bytes do not depend on the mode.  An explicit
    ``--direct_running_mode`` or ``--direct_num_workers`` wins.  ``save_main_session`` is off:
    everything workers run is in the installed package.  ``--runner DaskRunner`` stands for
    Beam's ``apache_beam.runners.dask.dask_runner.DaskRunner``.
    """
    options = PipelineOptions(jobserver.job_server_args(beam_args))  # Spark, Flink: an assembled job server
    standard = options.view_as(StandardOptions)
    standard.runner = RUNNER_PATHS.get(standard.runner, standard.runner)
    if standard.runner == RUNNER_PATHS["DaskRunner"] and importlib.util.find_spec("distributed") is None:
        raise VidshardError("--runner DaskRunner needs Dask: pip install 'vidshard[dask]' (apache-beam[dask])")
    if options.view_as(StandardOptions).runner is None:
        options.view_as(StandardOptions).runner = "DirectRunner"
        direct = options.view_as(DirectOptions)
        if not any(arg.startswith("--direct_running_mode") for arg in beam_args):
            small = videos is not None and videos <= IN_PROCESS_MAX_VIDEOS
            direct.direct_running_mode = "in_memory" if small else "multi_processing"
        if not any(arg.startswith("--direct_num_workers") for arg in beam_args):
            direct.direct_num_workers = len(os.sched_getaffinity(0))
    if not any(arg.startswith("--default_sdk_harness_log_level") for arg in beam_args):
        # Local workers log every bundle at INFO, and start-up warnings that need no action, to
        # the terminal; failures of videos are counted and listed in errors.jsonl instead.
        options.view_as(WorkerOptions).default_sdk_harness_log_level = "ERROR"
    options.view_as(SetupOptions).save_main_session = False
    return options


#: Default number of Dask partitions (one task each) for the videos: enough for the workers of a
#: small cluster, few enough that the grouping's task shuffle (about partitions squared tiny tasks)
#: stays cheap: 200 videos on 2 workers took 11.4 s with 16, 12.5 s with 32 and 14.7-18.0 s with
#: 64 partitions.  ``--dask_npartitions`` overrides it (2-4 per worker process on a big cluster).
DASK_PARTITIONS = 16


def dask_defaults(beam_args: Sequence[str], runner: str, videos: int) -> list[str]:
    """For DaskRunner: ``--dask_npartitions`` from the job size unless given, and quiet Dask logs.

    DaskRunner turns ``Create`` into a Dask bag of up to 128 elements per partition and treats
    ``Reshuffle`` as a no-op, so without this a job of up to 128 videos is one task on one worker.
    The ``LocalCluster`` that Beam starts without ``--dask_client_address`` logs its scheduler's
    and workers' life at INFO to the terminal; like the DirectRunner's workers (see
    :func:`pipeline_options`) it logs warnings only, unless ``DASK_LOGGING__DISTRIBUTED`` is set.
    """
    args = list(beam_args)
    if runner != RUNNER_PATHS["DaskRunner"]:
        return args
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    if any(arg.startswith(("--dask_npartitions", "--dask_partition_size")) for arg in args):
        return args
    return args + [f"--dask_npartitions={max(1, min(videos, DASK_PARTITIONS))}"]
