"""Object-storage options of the commands that read without Beam's options (``list``, ``inspect``,
``preview``, ``export-tfds``): Beam's own S3 option names, so one set of options reads the same
everywhere (``vidshard shard`` takes them as Beam options), and a DATA_DIR that may be ``s3://`` or ``gs://``.
"""
from __future__ import annotations

from typing import Any, Callable

import click

from vidshard.cli_params import EXISTING_DIR
from vidshard.format import storage

#: Beam's S3 options (``apache_beam.options.pipeline_options.S3Options``) and what each sets.
_S3_HELP = {
    "s3_endpoint_url": "S3 endpoint URL (another S3-compatible store, or a local one).",
    "s3_access_key_id": "S3 access key id (default: boto3's chain, AWS_ACCESS_KEY_ID, ~/.aws).",
    "s3_secret_access_key": "S3 secret access key.",
    "s3_session_token": "S3 session token.",
    "s3_region_name": "S3 region.",
    "s3_verify": "CA bundle to verify the S3 endpoint's certificate with.",
}


class DataDir(click.ParamType):
    """A local folder that must exist (as :data:`~vidshard.cli_params.EXISTING_DIR`), or an ``s3://`` / ``gs://``
    URI, checked when it is read."""

    name = "directory"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if storage.is_remote(str(value)):
            return str(value)
        return EXISTING_DIR.convert(value, param, ctx)


DATA_DIR = DataDir()


def object_store_options(beam_too: bool = False) -> Callable[[Callable], Callable]:
    """Add ``--s3_endpoint_url`` ... to a command; their values configure the readers (and, with
    ``beam_too``, Beam's ``FileSystems``, which sources read through) before the command runs."""
    def decorate(command: Callable) -> Callable:
        def configure(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
            given = ctx.meta.setdefault("vidshard.s3_options", {})
            given[_param.name] = value
            if len(given) == len(_S3_HELP):  # the last of them: configure once, with all of them
                if beam_too:
                    from vidshard.sources import use_options
                    use_options(given)
                else:
                    storage.configure(**given)
            return value

        for name, text in reversed(_S3_HELP.items()):
            command = click.option(f"--{name}", name, default=None, metavar="VALUE", help=text, expose_value=False,
                                   callback=configure)(command)
        return command
    return decorate
