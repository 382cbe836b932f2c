"""Exception types that the CLI turns into one clear line and a non-zero exit.

Anything a user can cause (a bad source, a bad argument, undecodable media) raises a subclass
of :class:`VidshardError`; any other exception is a bug and keeps its traceback.
"""


class VidshardError(Exception):
    """Base of all errors caused by input or arguments rather than by a bug."""


class SourceError(VidshardError):
    """The source cannot be listed or read (unreachable, not a zip, no videos, ...)."""


class MemberReadError(SourceError):
    """One member of a source could not be read; the job records it and goes on."""


class SourceUnreachableError(MemberReadError):
    """The source cannot be reached at all after the retries (no connection, no name resolution).

    Unlike a failed member read, which a job records and goes past, it stops a sharding job: the
    videos left would all fail the same way, each after its retries, and the output would be
    marked complete without them.  What is staged stays for ``--resume``.
    """


class CatalogError(VidshardError):
    """The selection or split request does not fit the listing."""


class DecodeError(VidshardError):
    """A video's bytes do not decode to at least one frame; the reason says why."""


class ShardFormatError(VidshardError):
    """A shard directory or record does not match its ``dataset_info.json``."""


class CommandLineError(VidshardError):
    """The command line holds an option no command defines (``option`` set) or a stray word.

    The CLI reports it the way click reports its own usage errors (exit status 2, with a
    did-you-mean from ``possibilities``), so a typo reads the same in every command.
    """

    def __init__(self, message: str, option: str | None = None, possibilities: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.option = option
        self.possibilities = possibilities
