"""The ``vidshard`` command: one module per sub-command, registered here."""
import logging

import click

from vidshard import __version__
from vidshard.errors import VidshardError


class _Group(click.Group):
    """Turns :class:`VidshardError` into one ``Error: ...`` line and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VidshardError as exc:
            raise click.ClickException(str(exc)) from None


class _DropOptionalImportNotice(logging.Filter):
    """Drops Beam's import-time notice that its optional BigQuery client is absent: it needs no action."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("apitools not found")


def _configure_logging() -> None:
    """Warnings and errors only, in one format; Beam's chatter about its own internals stays quiet."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().addFilter(_DropOptionalImportNotice())
    logging.getLogger("apache_beam").setLevel(logging.ERROR)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidshard")
def main() -> None:
    """Shard video classification datasets with Apache Beam and train from the shards."""
    _configure_logging()


def _register() -> None:
    """Attach every sub-command; each lives in its own module so commands stay small."""
    from vidshard.cli import (
        bench_cmd, bench_train_cmd, demo_cmd, evaluate_cmd, inspect_cmd, list_cmd, preview_cmd, shard_cmd, train_cmd,
    )

    for command in (list_cmd.list_command, shard_cmd.shard_command, inspect_cmd.inspect_command,
                    preview_cmd.preview_command, train_cmd.train_command, evaluate_cmd.evaluate_command,
                    demo_cmd.demo_command, bench_cmd.bench_command, bench_train_cmd.bench_train_command):
        main.add_command(command)
    from vidshard.cli import export_tfds_cmd
    main.add_command(export_tfds_cmd.export_tfds_command)


_register()
