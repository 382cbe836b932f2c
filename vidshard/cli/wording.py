"""Library messages in the command line's words: each input field a message names becomes its option.

The library states a problem in its own terms and names the input at fault as a field in single
backquotes, the name of the parameter or setting that carries it (```splits` is empty``, ``give
either `num_classes` or `classes```).  The CLI shows every error and warning through
:func:`cli_wording`, which writes each such field as the option that sets it (``--splits is
empty``): the one place where library fields meet command-line flags.  A field named inline,
rather than one ``field`` attribute per error, also covers sentences that name two inputs.
"""
from __future__ import annotations

import re

import click

#: A field named in a library message: one identifier in single (not double) backquotes.
_FIELD = re.compile(r"(?<!`)`([A-Za-z_][A-Za-z0-9_]*)`(?!`)")

#: Fields whose option is not ``--`` plus the field name with hyphens for underscores.
_RENAMED = {"file_format": "--format"}


def option_of(field: str) -> str:
    """The command-line option that sets the library field ``field``: ``split_by`` -> ``--split-by``."""
    return _RENAMED.get(field, "--" + field.replace("_", "-"))


def cli_wording(message: str) -> str:
    """``message`` with every backquoted field written as its option, for an ``Error:`` or ``Warning:`` line."""
    return _FIELD.sub(lambda match: option_of(match[1]), message)


def bad_value(message: str, ctx: click.Context | None = None) -> click.UsageError:
    """A value on the command line that is wrong on its face, as click reports its own: a usage error, exit status 2.

    ``message`` is a library message (its fields become options).  Every command reports a bad
    value this way, whether click's types found it or vidshard's checks did; what can only be
    found wrong against the data (a class the source lacks) stays an ``Error:`` line, exit status 1.
    """
    return click.UsageError(cli_wording(message), ctx or click.get_current_context(silent=True))
