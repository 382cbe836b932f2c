"""vidshard: decode a video classification dataset once, with Apache Beam, into TFRecord shards.

``vidshard.shard(source, data_dir, ...)`` runs the sharding job and ``vidshard.load(data_dir,
"train[:10%]", backend=...)`` reads a split (see :mod:`vidshard.api` and docs/api.md).  They are
imported on first use, so ``import vidshard`` imports neither Beam nor TensorFlow.
"""

from vidshard.version import __version__

__all__ = ["shard", "load", "__version__"]


def __getattr__(name: str):
    """``vidshard.shard`` and ``vidshard.load``, imported from :mod:`vidshard.api` when first used (PEP 562)."""
    if name in ("shard", "load"):
        from vidshard import api

        return getattr(api, name)
    raise AttributeError(f"module 'vidshard' has no attribute {name!r}")
