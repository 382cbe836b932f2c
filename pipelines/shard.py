"""``python -m vidshard.pipelines.shard SOURCE DATA_DIR [options] [Beam options]``: ``vidshard shard``.

The same command with the same options (it runs the CLI's ``shard``); Beam options (``--runner``,
``--direct_num_workers``, ``--project``, ...) pass through unchanged.  Only an entry point: the
launcher's code is in :mod:`vidshard.pipelines.launch`, and nothing imports this module, so the
CLI importing the launcher and this module importing the CLI form no cycle.
"""
from __future__ import annotations

import sys
from typing import Sequence

from vidshard.cli import main


def run(argv: Sequence[str] | None = None) -> None:
    """Run ``vidshard shard`` with ``argv`` (default: this process's arguments)."""
    main(args=["shard", *(sys.argv[1:] if argv is None else argv)], prog_name="python -m vidshard.pipelines.shard")


if __name__ == "__main__":
    run()
