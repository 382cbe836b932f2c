"""``vidshard shard --resume``: finish an interrupted run, reusing the examples it staged.

A run records a manifest in its staging folder before it reads any video: the source, a digest
of the plan (every video's split, label, size, shard and position), every setting that shapes an
example or a shard file, and the format and vidshard versions.  ``--resume`` rebuilds that
manifest from the new command line and refuses, naming the fields, if anything differs: the
staged examples would not be the ones this run would make.  Otherwise it reuses every complete
staged example (renamed into place, so complete; its size is also in its name), deletes the
staged errors so that those videos are tried again (a fetch error may have been transient),
and leaves only the remaining videos to the pipeline.  Shards are written again from the staged
examples, so the output is byte-identical to that of an uninterrupted run.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any, Sequence

from vidshard.pipelines import staging
from vidshard.catalog import SplitPlan
from vidshard.errors import VidshardError
from vidshard.format.info import FORMAT_VERSION
from vidshard.pipelines.transforms import Outcome, ShardSlot, WorkItem
from vidshard.sampling import EncodeSettings
from vidshard.version import __version__


def manifest(source: str, plan: SplitPlan, settings: EncodeSettings, compression: str, shards: int | None,
             items: Sequence[WorkItem], slots: Sequence[ShardSlot]) -> dict[str, Any]:
    """What a run is asked to do, as the fields ``--resume`` compares (``source`` without credentials)."""
    sizes = {video.video_id: video.size for video in plan.videos}
    layout = {"class_names": list(plan.class_names), "shard_files": [slot.name for slot in slots],
              "videos": [[item.split, item.shard, item.position, item.video_id, item.label, item.label_name,
                          sizes[item.video_id]] for item in items]}
    audited = {"audit": settings.audit.to_dict()} if settings.audit is not None else {}
    return audited | {
        "source": source,
        "split_policy": plan.policy,
        "split_request": plan.request,
        "seed": plan.seed,
        "plan_sha256": hashlib.sha256(json.dumps(layout, sort_keys=True).encode("utf-8")).hexdigest(),
        "clip_spec": asdict(settings.clip_spec),
        "encoding": settings.encoding,
        "quality": settings.quality,
        "compression": compression,
        "shards": shards or "auto",
        "format_version": FORMAT_VERSION,
        "vidshard_version": __version__,
    }


def differences(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``field: then -> now`` for every field that differs (clip_spec field by field)."""
    found = []
    for key in sorted(set(then) | set(now)):
        old, new = then.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            found += [f"{key}.{name}: {old.get(name)!r} -> {new.get(name)!r}"
                      for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
        elif old != new:
            found.append(f"{key}: {old!r} -> {new!r}")
    return found


def prepare(data_dir: str, wanted: dict[str, Any], items: Sequence[WorkItem]
            ) -> tuple[list[WorkItem], list[tuple[tuple[str, int], Outcome]]]:
    """Check an interrupted run against ``wanted``; return (videos still to do, outcomes to reuse).

    Raises :class:`VidshardError` when the staging folder has no manifest or its manifest differs.
    """
    then = staging.read_manifest(data_dir)
    if then is None:
        raise VidshardError(f"cannot resume {data_dir}: its staging folder has no manifest (an older vidshard, or a "
                            "run stopped before it started); pass `overwrite` to start again")
    changed = differences(then, wanted)
    if changed:
        raise VidshardError(f"cannot resume {data_dir}: the interrupted run was asked something else ("
                            + "; ".join(changed) + "); rerun with its settings, or pass `overwrite`")
    staged = staging.staged_outcomes(data_dir)
    staging.remove([found.path for found in staged if found.is_error])  # tried again
    staging.remove_summaries(data_dir)
    examples = {(found.split, found.shard, found.position): found.path for found in staged if not found.is_error}
    rows = staging.staged_quality(data_dir) if "audit" in wanted else {}  # an audited run's rows go with its examples
    rest, reused = [], []
    for item in items:
        path = examples.get((item.split, item.shard, item.position))
        if path is None:
            rest.append(item)
        else:
            reused.append(((item.split, item.shard), Outcome(item.position, item.video_id, path,
                                                             quality=rows.get((item.split, item.shard, item.position)))))
    return rest, reused
