"""The ``vidshard`` command: one module per sub-command, registered here."""
import click

from vidshard.version import __version__
from vidshard.cli.interrupts import Interrupted, signal_name, signals_raise
from vidshard.cli.terminal import configure_logging, native_output_hidden
from vidshard.cli.wording import cli_wording
from vidshard.errors import VidshardError


class _Group(click.Group):
    """Turns :class:`VidshardError` into one ``Error: ...`` line (in the CLI's words) and exit status 1.

    Ctrl-C and SIGTERM (see :mod:`vidshard.cli.interrupts`) end in one line and status 130 or 143;
    ``shard`` and ``train`` say there what they keep for ``--resume``.
    """

    standalone = False  #: set by main(): whether click runs the command as the program (see owns_the_process)

    def main(self, *args, **kwargs):
        self.standalone = kwargs.get("standalone_mode", True)
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        try:
            with signals_raise():
                return super().invoke(ctx)
        except VidshardError as exc:
            raise click.ClickException(cli_wording(str(exc))) from None
        except KeyboardInterrupt as exc:
            raise Interrupted(f"Interrupted ({signal_name(exc)})", signal_name(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidshard")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show what libraries and Beam's workers log (TensorFlow, OpenCV, FFmpeg, retries).")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Shard video classification datasets with Apache Beam and train from the shards."""
    configure_logging(verbose)
    if not verbose:
        ctx.with_resource(native_output_hidden())


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
    from vidshard.cli import audit_cmd
    main.add_command(audit_cmd.audit_command)


_register()
