"""Flags: what a video's signals say is wrong with it, by named thresholds with documented defaults.

Each flag is one comparison of one signal of :mod:`vidshard.quality.signals` with one threshold
of :class:`Thresholds` (``vidshard shard`` has an option for each, docs/quality.md gives the
defaults and how they were chosen), except the duplicate flags, which come from pairs of videos
(:mod:`vidshard.quality.hashing`).  A flag records the signal and its value, so a video left out
by ``--exclude`` is listed in ``errors.jsonl`` with why.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

from vidshard.errors import VidshardError

#: Flags from one video's own signals, in report order.
VIDEO_FLAGS: tuple[str, ...] = ("black", "blank", "dark", "frozen", "noisy", "blurry", "blocky")
#: Flags from pairs of videos: a near-duplicate in the same split, and one in another split (a leak).
PAIR_FLAGS: tuple[str, ...] = ("duplicate", "duplicate-across-splits")
FLAGS: tuple[str, ...] = VIDEO_FLAGS + PAIR_FLAGS


@dataclass(frozen=True)
class Thresholds:
    """Where each flag starts.  Defaults were set on docs/quality.md's injected-defect set, at 112 and 224
    pixels; noise, sharpness and blockiness are measured on the stored (resized) frames, so they depend on the
    output size: check the histograms of ``vidshard audit`` before acting on a new dataset."""

    black_share: float = 0.25  #: black: at least this share of seen frames near-black
    blank_share: float = 0.5  #: blank: at least this share of seen frames near-uniform (and not black)
    dark_luma: float = 40.0  #: dark: mean luma below this (of 255)
    frozen_seconds: float = 0.5  #: frozen: consecutive seen frames unchanged over at least this many seconds
    noise_sigma: float = 3.5  #: noisy: Immerkaer noise sigma at least this (luma levels)
    sharpness: float = 0.12  #: blurry: Laplacian variance / luma variance below this
    blockiness: float = 1.4  #: blocky: block-boundary steps at least this many times the others
    duplicate_bits: int = 10  #: duplicate: video pHash distance at most this many bits (of 64)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


#: Threshold field -> (lowest, highest, whether the lowest itself is refused): the values that mean something.
#: The command's options take their click types from it (:mod:`vidshard.cli.quality_options`).
THRESHOLD_RANGES: dict[str, tuple[float, float, bool]] = {
    "black_share": (0, 1, False), "blank_share": (0, 1, False), "dark_luma": (0, 255, False),
    "frozen_seconds": (0, float("inf"), True), "noise_sigma": (0, float("inf"), True),
    "sharpness": (0, float("inf"), True), "blockiness": (1, float("inf"), True), "duplicate_bits": (0, 15, False),
}


def check_thresholds(thresholds: Thresholds) -> None:
    """Raise a one-line :class:`VidshardError` naming the first threshold outside :data:`THRESHOLD_RANGES`."""
    for field in fields(thresholds):
        value = getattr(thresholds, field.name)
        low, high, open_low = THRESHOLD_RANGES[field.name]
        kind = int if field.name == "duplicate_bits" else (int, float)
        number = isinstance(value, kind) and not isinstance(value, bool)
        if not number or not (low < value if open_low else low <= value) or value > high:
            bound = f"above {low:g}" if open_low else f"from {low:g}"
            raise VidshardError(f"`thresholds` {field.name}={value!r}: must be a number {bound}"
                                + (f" to {high:g}" if high != float("inf") else ""))


#: flag -> (signal, comparison, threshold field): the rule each video flag applies.
RULES: dict[str, tuple[str, str, str]] = {
    "black": ("black_share", ">=", "black_share"),
    "blank": ("uniform_share", ">=", "blank_share"),
    "dark": ("luma_mean", "<", "dark_luma"),
    "frozen": ("frozen_seconds", ">=", "frozen_seconds"),
    "noisy": ("noise", ">=", "noise_sigma"),
    "blurry": ("sharpness", "<", "sharpness"),
    "blocky": ("blockiness", ">=", "blockiness"),
}


def video_flags(signals: Mapping[str, Any], thresholds: Thresholds) -> dict[str, float]:
    """``flag -> the signal's value`` for every video flag the signals raise.

    ``dark`` is not raised for a black video (its darkness is the black stretch), nor ``blurry``
    or ``blocky`` for a video with no textured frame (nothing to measure).
    """
    if not signals.get("frames_seen"):
        return {}
    raised: dict[str, float] = {}
    for flag, (signal, comparison, field) in RULES.items():
        value, limit = float(signals[signal]), float(getattr(thresholds, field))
        if value >= limit if comparison == ">=" else value < limit:
            raised[flag] = value
    if "black" in raised:
        raised.pop("dark", None)
    if signals.get("black_share", 0) + signals.get("uniform_share", 0) >= 1.0:
        raised.pop("blurry", None)
        raised.pop("blocky", None)
    return raised


def describe(flag: str, value: float, thresholds: Thresholds) -> str:
    """The reason an excluded video is listed with in ``errors.jsonl``: the flag, its signal and value."""
    if flag in RULES:
        signal, comparison, field = RULES[flag]
        return f"quality flag {flag}: {signal} {value:g} {comparison} {getattr(thresholds, field):g}, excluded"
    return f"quality flag {flag}: pHash distance {value:g} bits <= {thresholds.duplicate_bits}, excluded"


def parse_exclude(text: str) -> tuple[str, ...]:
    """``"frozen,black"`` -> ("black", "frozen") in :data:`FLAGS` order; ValueError naming an unknown flag."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FLAGS]
    if unknown or not names:
        raise ValueError(f"unknown quality flag(s) {', '.join(unknown) or repr(text)}: choose from {', '.join(FLAGS)}")
    return tuple(flag for flag in FLAGS if flag in names)


@dataclass(frozen=True)
class Audit:
    """What a sharding run audits with: the thresholds, and the flags whose videos it leaves out."""

    thresholds: Thresholds = Thresholds()
    exclude: tuple[str, ...] = ()

    @property
    def pair_exclusions(self) -> tuple[str, ...]:
        """The excluded flags that need every video's hashes (decided after all are decoded)."""
        return tuple(flag for flag in self.exclude if flag in PAIR_FLAGS)

    def to_dict(self) -> dict[str, Any]:
        return {"thresholds": self.thresholds.to_dict(), "exclude": list(self.exclude)}


def audit_settings(audit: bool | Audit = False, exclude: str | Sequence[str] | None = None,
                   thresholds: Thresholds | Mapping[str, float] | None = None) -> Audit | None:
    """The :class:`Audit` the Python API's ``audit``, ``exclude`` and ``thresholds`` arguments ask for; None for none.

    The same rules as ``vidshard shard``'s options: ``exclude`` (``"frozen,black"`` or a list of
    flags) turns the audit on, and thresholds without ``audit`` or ``exclude`` are refused (they
    would be ignored).  ``audit`` may be a whole :class:`Audit`, and then neither of the others.
    ``thresholds`` is a :class:`Thresholds` or a mapping of some of its fields (the rest default).
    Raises a one-line :class:`VidshardError` naming the argument.
    """
    if isinstance(audit, Audit):
        if exclude is not None or thresholds is not None:
            raise VidshardError("`audit` is a whole Audit (thresholds and exclusions): pass `exclude` and "
                                "`thresholds` inside it, not beside it")
        unknown = [flag for flag in audit.exclude if flag not in FLAGS]
        if unknown:
            raise VidshardError(f"`audit` excludes unknown quality flag(s) {', '.join(unknown)}: choose from "
                                f"{', '.join(FLAGS)}")
        check_thresholds(audit.thresholds)
        return audit
    if not isinstance(audit, bool):
        raise VidshardError(f"`audit` must be True, False or an Audit, not {audit!r}")
    flags: tuple[str, ...] = ()
    if exclude is not None:
        try:
            flags = parse_exclude(exclude if isinstance(exclude, str) else ",".join(exclude))
        except ValueError as exc:
            raise VidshardError(f"`exclude`: {exc}") from None
    if thresholds is not None and not isinstance(thresholds, Thresholds):
        known = {field.name for field in fields(Thresholds)}
        unknown = sorted(set(thresholds) - known)
        if unknown:
            raise VidshardError(f"`thresholds`: unknown threshold(s) {', '.join(unknown)}: choose from "
                                f"{', '.join(sorted(known))}")
        thresholds = Thresholds(**thresholds)
    if not audit and not flags:
        if thresholds is not None:
            raise VidshardError("`thresholds` are the quality audit's: pass `audit=True` (or `exclude`) too")
        return None
    thresholds = thresholds or Thresholds()
    check_thresholds(thresholds)
    return Audit(thresholds, flags)
