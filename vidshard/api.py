"""The Python API: :func:`shard` a dataset and :func:`load` a split, from a notebook or a script.

``vidshard.shard`` and ``vidshard.load`` are these functions (``vidshard/__init__.py`` imports
this module only when one of them is first used, so ``import vidshard`` stays light: Beam is
imported by :func:`shard`, TensorFlow or PyTorch by :func:`load` with that backend).

- :func:`shard` runs the same job as ``vidshard shard`` (:func:`vidshard.pipelines.job.shard`)
  with the command's defaults, and returns its :class:`~vidshard.pipelines.launch.ShardResult`.
- :func:`load` reads a split string (TFDS's syntax: ``"train[:10%]"``, ``"train+val"``,
  ``"test[-20%:]"``, ``"train[:100]"``, see :mod:`vidshard.splitspec`) with one of the readers:
  ``numpy`` (:class:`~vidshard.readers.numpy_reader.ShardReader`), ``torch``
  (:class:`~vidshard.readers.torch_data.ShardIterableDataset`), ``tf`` (a ``tf.data.Dataset`` from
  :func:`vidshard.readers.tf_data.make_dataset`) or ``grain`` (a ``grain.MapDataset``, ArrayRecord outputs).
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from vidshard.errors import VidshardError
from vidshard.sources.base import DEFAULT_MAX_MEMBER_BYTES

if TYPE_CHECKING:
    from vidshard.pipelines.launch import ShardResult
    from vidshard.quality.flags import Audit, Thresholds

#: The readers :func:`load` can return, by name.
BACKENDS = ("numpy", "torch", "tf", "grain")


def shard(
    source: str | os.PathLike,
    data_dir: str | os.PathLike,
    *,
    num_classes: int | None = None,
    classes: Sequence[str] | str | None = None,
    splits: str | None = None,
    split_by: str | None = None,
    split_lists: str | None = None,
    fold: int | None = None,
    manifest: str | None = None,
    group_pattern: str | None = None,
    seed: int = 0,
    n_frames: int = 10,
    frame_step: int = 15,
    size: int | tuple[int, int] = 224,
    clips_per_video: int = 1,
    sampling: str = "step",
    fps: float | None = None,
    eval_clips: int | None = None,
    encoding: str = "jpeg",
    quality: int = 95,
    shards: int | None = None,
    compression: str = "none",
    file_format: str = "tfrecord",
    audit: "bool | Audit" = False,
    exclude: str | Sequence[str] | None = None,
    thresholds: "Thresholds | Mapping[str, float] | None" = None,
    overwrite: bool = False,
    resume: bool = False,
    timeout: float = 30.0,
    retries: int = 4,
    max_video_mib: int = DEFAULT_MAX_MEMBER_BYTES >> 20,
    verify_tls: bool = True,
    beam_args: Sequence[str] = (),
    progress: bool = True,
) -> "ShardResult":
    """Decode ``source`` (an http(s) zip URL, a local zip or folder) once into shards in ``data_dir``.

    The arguments are ``vidshard shard``'s options under their field names (docs/api.md lists
    them; ``size`` is ``N`` or ``(height, width)``; ``shards=None`` is auto, about 128 MiB per
    file).  ``seed`` seeds the group order and the clips.  ``beam_args`` are Beam pipeline options
    (``["--runner", "DaskRunner"]``); without them the DirectRunner.  ``progress`` shows a
    ``tqdm.auto`` bar (a widget in Jupyter).  The plan's warnings are Python ``UserWarning`` s.
    ``audit``, ``exclude`` and ``thresholds`` are ``--audit``, ``--exclude`` and the threshold
    options (docs/quality.md): ``exclude`` is ``"frozen,black"`` or a list of flags and turns the
    audit on; ``thresholds`` is a :class:`~vidshard.quality.flags.Thresholds` or a dict of some of
    its fields and needs ``audit=True`` or ``exclude``; ``audit`` may also be a whole
    :class:`~vidshard.quality.flags.Audit` (:func:`~vidshard.quality.flags.audit_settings`).
    Bad arguments raise before the source is opened and before anything is written; returns
    the job's result: ``result.info`` is the ``dataset_info.json`` written,
    ``result.summary(data_dir)`` the command's summary lines.
    """
    from vidshard.pipelines.job import shard as run  # Beam: imported only now
    from vidshard.pipelines.options import check_beam_args
    from vidshard.planning import Selection
    from vidshard.quality.flags import audit_settings
    from vidshard.sampling import ClipSpec, EncodeSettings
    from vidshard.sources import SourceOptions

    _check_ipython_needs()
    audited = audit_settings(audit, exclude, thresholds)
    height, width = (size, size) if isinstance(size, int) else size
    clip = ClipSpec(n_frames=n_frames, frame_step=frame_step, height=height, width=width,
                    clips_per_video=clips_per_video, seed=seed, sampling=sampling, fps=fps, eval_clips=eval_clips)
    check_beam_args(list(beam_args), [])
    selection = Selection(num_classes=num_classes, classes=classes, splits=splits, split_by=split_by,
                          split_lists=split_lists, fold=fold, seed=seed, manifest=manifest,
                          group_pattern=group_pattern)
    options = SourceOptions(timeout=float(timeout), retries=retries, max_member_bytes=max_video_mib << 20,
                            verify_tls=verify_tls)
    # Beam's loggers warn about what needs no action (its in-process runner's worker count, Interactive
    # Beam's visualisation extras in Jupyter), as the CLI hides them; a level the caller set is kept.
    beam_logger = logging.getLogger("apache_beam")
    quiet = beam_logger.level == logging.NOTSET
    if quiet:
        beam_logger.setLevel(logging.ERROR)
    try:
        return run(os.fspath(source), os.fspath(data_dir), selection, EncodeSettings(clip, encoding, quality, audited),
                   compression=compression, shards=shards, file_format=file_format, source_options=options,
                   overwrite=overwrite, resume=resume, beam_args=beam_args, progress=progress)
    finally:
        if quiet:
            beam_logger.setLevel(logging.NOTSET)


def _check_ipython_needs() -> None:
    """In IPython (Jupyter), Beam imports its interactive module, which needs pandas < 2.4: say so before any work."""
    from apache_beam.utils.interactive_utils import is_in_ipython

    if not is_in_ipython():
        return
    try:
        version = tuple(int(part) for part in importlib.metadata.version("pandas").split(".")[:2])
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is None or version >= (2, 4):
        found = "no pandas" if version is None else f"pandas {'.'.join(map(str, version))}"
        raise VidshardError(f"in IPython or Jupyter, Apache Beam needs pandas < 2.4 (found {found}): "
                            "pip install 'vidshard[notebook]'")


def load(data_dir: str | os.PathLike, split: str = "train", backend: str = "numpy", *,
         num_replicas: int = 1, rank: int = 0, drop_last: bool = False, **options: Any) -> Any:
    """The records a split string selects, as ``backend``'s dataset.

    ``split`` is TFDS's syntax (see :mod:`vidshard.splitspec`); the selection is a fixed set of
    records in each split's canonical order, whatever the shuffle.  ``num_replicas``/``rank``/
    ``drop_last`` (PyTorch's ``DistributedSampler`` conventions) give each data-parallel rank an
    equal share of the selection (:meth:`vidshard.parts.Part.for_rank`; ``numpy`` and ``torch``).
    ``options`` go to the backend's reader (``batch_size``, ``shuffle``, ``seed``, ``clips``,
    ``augment``, ``with_ids``; ``layout="CTHW"`` for numpy, torch and grain; ``cache`` for tf; ...).
    Every backend yields the same element (:mod:`vidshard.readers.records`): ``(frames, labels)``
    (``with_ids=True``: ``(frames, labels, video_ids)``), uint8 frames ``[T, H, W, 3]`` (or the
    ``layout``'s float32), int64 labels:

    - ``numpy``: a :class:`~vidshard.readers.numpy_reader.ShardReader`;
    - ``torch``: a :class:`~vidshard.readers.torch_data.ShardIterableDataset` (``pip install 'vidshard[torch]'``);
    - ``tf``: a ``tf.data.Dataset`` (TensorFlow; ids as ``tf.string``);
    - ``grain``: a ``grain.MapDataset`` over an ArrayRecord output (``pip install 'vidshard[grain]'``).

    A split string naming several splits needs them to store the same number of clips per
    video (with ``eval_clips``, train and the other splits differ).
    """
    from vidshard.splitspec import select

    if backend not in BACKENDS:
        raise VidshardError(f"`backend` {backend!r}: choose one of {', '.join(BACKENDS)}")
    data_dir = os.fspath(data_dir)
    info, part, slices = select(data_dir, split)
    names = list(dict.fromkeys(s.split for s in slices))
    clips = {name: info.clip.clips_in(name) for name in names}
    if len(set(clips.values())) > 1:
        raise VidshardError(f"split {split!r}: its splits store different numbers of clips per video "
                            f"({', '.join(f'{name} {count}' for name, count in clips.items())}); load them one by one")
    if backend in ("tf", "grain") and (num_replicas, rank) != (1, 0):
        raise VidshardError(f"`num_replicas`/`rank` apply to the numpy and torch backends, not {backend}")
    if backend == "numpy":
        from vidshard.readers.numpy_reader import ShardReader

        if (num_replicas, rank) != (1, 0):
            part = part.for_rank(rank, num_replicas, drop_last)
        return ShardReader(data_dir, names[0], part=part, **options)
    if backend == "torch":
        from vidshard.readers.torch_data import ShardIterableDataset

        return ShardIterableDataset(data_dir, names[0], part=part, num_replicas=num_replicas, rank=rank,
                                    drop_last=drop_last, **options)
    if backend == "tf":
        from vidshard.readers.tf_data import make_dataset

        return make_dataset(data_dir, names[0], part=part, **options)
    from vidshard.readers.grain_data import make_dataset as grain_dataset

    return grain_dataset(data_dir, names[0], part=part, **options)
