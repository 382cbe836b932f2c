"""Opening one split of an output: the one entry point every reader, ``inspect``, ``preview`` and
the trainers use, so a split the output lacks (or a shard file it lost) reads the same everywhere, in a local folder or in object storage."""
from __future__ import annotations

import os

from vidshard.errors import ShardFormatError
from vidshard.format import storage
from vidshard.format.info import DatasetInfo, load_info


def split_files(data_dir: str | os.PathLike, split: str, info: DatasetInfo | None = None,
                check_files: bool = True) -> tuple[DatasetInfo, list[str]]:
    """``dataset_info.json`` of ``data_dir`` and the paths of ``split``'s shard files, in its order.

    ``info`` skips reading ``dataset_info.json`` again.  Raises ShardFormatError, naming what is
    missing, for a split the output lacks, a split without files or with more or fewer lengths than
    files, and (with ``check_files``) a shard file that is not there.
    """
    data_dir = os.fspath(data_dir)
    info = info or load_info(data_dir)
    if split not in info.splits:
        raise ShardFormatError(f"{data_dir} has no split {split!r}; it has {', '.join(sorted(info.splits)) or 'none'}")
    spl = info.splits[split]
    if not spl.shards:
        raise ShardFormatError(f"split {split!r} of {data_dir} has no shard files")
    if len(spl.shards) != len(spl.shard_lengths):
        raise ShardFormatError(f"{data_dir}: split {split!r} lists {len(spl.shards)} shards but {len(spl.shard_lengths)} lengths")
    paths = [storage.join(data_dir, name) for name in spl.shards]
    missing = [path for path in paths if not storage.exists(path)] if check_files else []
    if missing:
        raise ShardFormatError(f"split {split!r} lacks {len(missing)} of its {len(paths)} shard files, e.g. {missing[0]}")
    return info, paths
