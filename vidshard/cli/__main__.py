"""``python -m vidshard.cli`` runs the ``vidshard`` command (used where the console script is not on PATH)."""
from vidshard.cli import main

main()
