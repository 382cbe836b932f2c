"""TFDS-style split strings: ``"train[:10%]"``, ``"train+val"``, ``"test[-20%:]"``, ``"train[:100]"``.

The grammar and the arithmetic are those of TensorFlow Datasets' ``ReadInstruction``
(``tensorflow_datasets.core.splits``, 4.9), so a string selects the same records here as there:

- ``+`` joins instructions (spaces around it are allowed); each is ``name`` or ``name[from:to]``;
- a bound is a whole number of examples (``train[:100]``, negative from the end: ``train[-100:]``),
  a percentage (``train[:10%]``, ``train[33.3%:]``), or a number of shard files
  (``train[:2shard]``; ``train[3shard]`` is the fourth file alone); one unit per slice, taken from
  whichever bound carries it;
- a percentage ``p`` of ``n`` examples is ``round(p * n / 100)`` (Python's ``round``: halves to even);
- a bound beyond the split (``abs(bound) > n`` examples) is an error, a slice whose end comes before
  its start is empty;
- ``all`` is every split, in the order of ``dataset_info.json``, and takes no slice.

A selection is a :class:`~vidshard.parts.Part`: runs of records in each split's canonical order
(its files in the order of ``dataset_info.json``), so slicing is deterministic, independent of
any shuffle, and a reader opens only the files it needs.  Imports :mod:`vidshard.format` and
:mod:`vidshard.parts` only.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from vidshard.errors import ShardFormatError, VidshardError
from vidshard.format.info import DatasetInfo, load_info
from vidshard.parts import Part

_SUB_SPEC = re.compile(r"^(?P<name>[\w-]+)(\[(?P<selector>[\d\w%:.-]+)\])?$")
_BOUND = re.compile(r"^((?P<value>-?[\d_.]+)(?P<unit>%|shard)?)?$")
_PLUS = re.compile(r"\s*\+\s*")
_HELP = "expected e.g. train, train[:10%], train[-20%:], train[:100], train[:2shard] or train+val"


@dataclass(frozen=True)
class Instruction:
    """One ``name[from:to]`` of a split string, before the split's size is known."""

    split: str
    start: float | None = None
    stop: float | None = None
    unit: str = "abs"  #: ``abs`` (examples), ``%`` or ``shard``


@dataclass(frozen=True)
class Slice:
    """Examples ``[start, stop)`` of ``split``, in its canonical order (``start > stop``: none)."""

    split: str
    start: int
    stop: int


def parse(spec: str) -> list[Instruction]:
    """The instructions of a split string, checked for syntax only (see the module doc)."""
    subs = _PLUS.split(str(spec).strip())
    instructions = [_parse_one(sub, spec) for sub in subs]
    if len(instructions) > 1 and any(ins.split == "all" for ins in instructions):
        raise VidshardError(f"split {spec!r}: 'all' is every split already; it cannot be added to another")
    return instructions


def _parse_one(sub: str, spec: str) -> Instruction:
    match = _SUB_SPEC.match(sub)
    if not match:
        raise VidshardError(f"split {spec!r}: cannot read {sub!r}; {_HELP}")
    name, selector = match["name"], match["selector"]
    if selector is None:
        return Instruction(name)
    if name == "all":
        raise VidshardError(f"split {spec!r}: 'all' takes no slice")
    bounds = [_BOUND.match(text) for text in selector.split(":")]
    if not all(bounds) or not any(bound.group(0) for bound in bounds) or len(bounds) > 2:
        raise VidshardError(f"split {spec!r}: cannot read the slice [{selector}]; {_HELP}")
    units = {bound["unit"] for bound in bounds if bound["unit"]}
    if len(units) > 1:
        raise VidshardError(f"split {spec!r}: [{selector}] mixes % and shard; use one unit per slice")
    unit = units.pop() if units else "abs"
    if len(bounds) == 1:  # name[x]: one shard file
        if unit != "shard":
            raise VidshardError(f"split {spec!r}: [{selector}] without a colon names one shard file "
                                f"(e.g. {name}[0shard]); for examples write a slice, e.g. {name}[{selector}:]")
        first = int(_number(bounds[0]["value"], spec))
        return Instruction(name, first, first + 1, unit)
    start, stop = (None if bound["value"] is None else _number(bound["value"], spec) for bound in bounds)
    if unit != "%" and any(value is not None and value != int(value) for value in (start, stop)):
        raise VidshardError(f"split {spec!r}: [{selector}]: only percentages may have a fraction")
    if unit == "%" and any(value is not None and abs(value) > 100 for value in (start, stop)):
        raise VidshardError(f"split {spec!r}: percent bounds must be in [-100, 100], got [{selector}]")
    if unit != "%":
        start, stop = (None if value is None else int(value) for value in (start, stop))
    return Instruction(name, start, stop, unit)


def _number(text: str, spec: str) -> float:
    try:
        return float(text.replace("_", ""))
    except ValueError:
        raise VidshardError(f"split {spec!r}: {text!r} is not a number") from None


def resolve(spec: str, info: DatasetInfo, where: str = "the output") -> list[Slice]:
    """The absolute slices a split string selects of an output described by ``info``."""
    slices: list[Slice] = []
    for ins in parse(spec):
        if ins.split == "all":
            slices += [Slice(name, 0, split.num_examples) for name, split in info.splits.items()]
            continue
        if ins.split not in info.splits:
            raise ShardFormatError(f"{where} has no split {ins.split!r}; it has "
                                   f"{', '.join(sorted(info.splits)) or 'none'}")
        split = info.splits[ins.split]
        n = split.num_examples
        if ins.unit == "%":
            start = 0 if ins.start is None else int(round(ins.start * n / 100))
            stop = n if ins.stop is None else int(round(ins.stop * n / 100))
        elif ins.unit == "shard":
            lengths = split.shard_lengths
            start = 0 if ins.start is None else sum(lengths[:int(ins.start)])
            last = ins.stop if ins.stop is None or ins.stop > 0 else len(lengths) + ins.stop
            stop = n if last is None else sum(lengths[:int(last)])
        else:
            start = 0 if ins.start is None else int(ins.start)
            stop = n if ins.stop is None else int(ins.stop)
        if abs(start) > n or abs(stop) > n:
            raise VidshardError(f"split {spec!r}: [{_bound(ins.start, ins.unit)}:{_bound(ins.stop, ins.unit)}] "
                                f"is beyond split {ins.split!r} of {n} examples")
        slices.append(Slice(ins.split, start + n if start < 0 else start, stop + n if stop < 0 else stop))
    return slices


def _bound(value: float | None, unit: str) -> str:
    return "" if value is None else f"{value:g}{'' if unit == 'abs' else unit}"


def select(data_dir: str | os.PathLike, spec: str, info: DatasetInfo | None = None) -> tuple[DatasetInfo, Part,
                                                                                                 list[Slice]]:
    """``dataset_info.json``, the :class:`Part` a split string selects, and its slices.

    The part holds each slice's records in its split's canonical order, the slices one after the
    other; reading it unshuffled yields exactly TFDS's records for the same string.
    """
    data_dir = os.fspath(data_dir)
    info = info or load_info(data_dir)
    slices = resolve(spec, info, data_dir)
    wholes = {name: Part.whole(data_dir, info, name) for name in dict.fromkeys(s.split for s in slices)}
    return info, Part.concat(wholes[s.split].slice(s.start, max(s.start, s.stop)) for s in slices), slices
