"""The sharding job, start to end, as one library call: :func:`shard`.

Every caller runs the same steps in the same order (the Python API :func:`vidshard.shard`, the
demo, and the ``vidshard shard`` command): check the output and the settings, read the
manifest, open and list the source, build the catalog, plan the splits, report the plan's
warnings, clear the output with ``overwrite`` (only after a successful plan), then
:func:`~vidshard.pipelines.launch.run_job` (pipeline, accounting, ``dataset_info.json`` last).
Nothing is written and nothing removed until the plan is made, so a bad selection leaves an
existing output as it was.  Messages name fields, not options.
"""
from __future__ import annotations

import importlib.util
import warnings
from typing import Callable, Sequence

from vidshard.catalog import SplitPlan
from vidshard.errors import VidshardError
from vidshard.format.file_adapters import FILE_FORMATS
from vidshard.format.schema import ENCODINGS
from vidshard.format.tfrecord import COMPRESSIONS
from vidshard.pipelines.launch import ShardRequest, ShardResult, run_job
from vidshard.pipelines.output import check_output, clear_output
from vidshard.sampling import EncodeSettings
from vidshard.planning import Selection, catalog_of, plan, read_rows
from vidshard.sources import SourceOptions, check_source, open_source
from vidshard.sources.objectstore import use_beam_args
from vidshard.pipelines.staging import writer_lock

#: ``on_start(plan, reused, interrupted)``: called once, just before the pipeline starts, with the
#: plan, the videos an interrupted run staged that are reused, and whether there was one.
OnStart = Callable[[SplitPlan, int, bool], None]


def check_settings(settings: EncodeSettings, compression: str, file_format: str, shards: int | None) -> None:
    """Refuse stored-format settings that no writer takes, before any work."""
    if settings.encoding not in ENCODINGS:
        raise VidshardError(f"`encoding` {settings.encoding!r}: choose one of {', '.join(ENCODINGS)}")
    if not 1 <= settings.quality <= 100:
        raise VidshardError(f"`quality` must be between 1 and 100, got {settings.quality}")
    if compression not in COMPRESSIONS:
        raise VidshardError(f"`compression` {compression!r}: choose one of {', '.join(COMPRESSIONS)}")
    if file_format not in FILE_FORMATS:
        raise VidshardError(f"`file_format` {file_format!r}: choose one of {', '.join(FILE_FORMATS)}")
    if shards is not None and (not isinstance(shards, int) or shards < 1):
        raise VidshardError(f"`shards` must be a positive number of files per split or None (auto), got {shards!r}")
    if file_format == "array_record":
        if compression != "none":
            raise VidshardError("`compression` gzip applies to TFRecord files; ArrayRecord compresses its own "
                                "chunks (zstd): leave `compression` none")
        if importlib.util.find_spec("array_record") is None:
            raise VidshardError("`file_format` array_record needs the array_record package: "
                                "pip install 'vidshard[grain]'")


def shard(source: str, data_dir: str, selection: Selection, settings: EncodeSettings, *,
          compression: str = "none", shards: int | None = None, file_format: str = "tfrecord",
          source_options: SourceOptions | None = None, overwrite: bool = False, resume: bool = False,
          beam_args: Sequence[str] = (), progress: bool = False,
          on_warning: Callable[[str], None] | None = None, on_start: OnStart | None = None,
          on_interrupt: Callable[[str, int, int], str] | None = None, detach: bool = False) -> ShardResult:
    """Shard ``source`` into ``data_dir`` and return what was written (see the module doc).

    ``beam_args`` are Beam pipeline options (checked by the caller; the DirectRunner without a
    ``--runner``); ``progress`` shows a live bar on stderr; ``on_warning`` receives each of the
    plan's warnings (a field named in backquotes; without it they are Python warnings);
    ``on_interrupt(signal name, staged, total)`` makes SIGINT/SIGTERM end the process with the line
    it returns (:func:`~vidshard.pipelines.launch.run_job`; only for a caller that owns the process).
    The output's one-writer lock is held from before ``overwrite`` clears it until the run ends;
    ``detach`` returns once the runner accepted the job, which then completes the output itself.
    """
    source_options = source_options or SourceOptions()
    use_beam_args(list(beam_args))  # the --s3_* options serve the launcher's own checks and reads too
    check_settings(settings, compression, file_format, shards)
    interrupted = check_output(source, data_dir, overwrite, resume, beam_args)
    selection.check()
    rows = read_rows(selection, source)
    check_source(source)  # s3:// and gs://: asked once, one line if the store refuses
    with open_source(source, source_options) as src:
        catalog = catalog_of(src.list_members(), rows, selection.group_pattern)
    planned = plan(catalog, selection)
    for warning in planned.warnings:
        if on_warning is not None:
            on_warning(warning)
        else:
            warnings.warn(warning, UserWarning, stacklevel=2)
    request = ShardRequest(source, data_dir, planned, settings, compression, shards, source_options,
                           file_format=file_format)
    with writer_lock(data_dir):
        if overwrite:
            clear_output(data_dir)
        return run_job(request, beam_args, progress=progress, resume=resume, on_interrupt=on_interrupt, detach=detach,
                       on_start=None if on_start is None else lambda reused: on_start(planned, reused, interrupted))
