"""Flags: what a video's signals say is wrong with it, by named thresholds with documented defaults.

Each flag is one comparison of one signal of :mod:`vidshard.quality.signals` with one threshold
of :class:`Thresholds` (``vidshard shard`` has an option for each, docs/quality.md gives the
defaults and how they were chosen), except the duplicate flags, which come from pairs of videos
(:mod:`vidshard.quality.hashing`).  A flag records the signal and its value, so a video left out
by ``--exclude`` is listed in ``errors.jsonl`` with why.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

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
