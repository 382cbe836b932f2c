"""Click parameter types shared by every vidshard command, so one mistake reads the same everywhere.

This module sits outside the :mod:`vidshard.cli` package on purpose: ``python -m
vidshard.bench.train_step`` uses it on machines that lack the packages the other commands import.
"""
from __future__ import annotations

import click

#: A shard directory or run directory that must exist.  A missing one is click's usage error,
#: exit status 2: ``Invalid value for 'DATA_DIR': Directory '...' does not exist.``
EXISTING_DIR = click.Path(exists=True, file_okay=False, dir_okay=True)
