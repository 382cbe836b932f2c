"""``vidshard bench-train DATA_DIR``: clips/s of a training step fed from shards versus synthetic batches.

The command is defined in :mod:`vidshard.bench.train_step`, beside the benchmark, so that
``python -m vidshard.bench.train_step`` runs the same click command on machines without the
``vidshard`` command (the GPU machine lacks packages that other sub-commands import): the two
cannot drift apart.
"""
from vidshard.bench.train_step import bench_train_command

__all__ = ["bench_train_command"]
