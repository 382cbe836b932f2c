"""TFRecord against ArrayRecord on the same clips: size on disk and read throughput, in one run.

``python -m vidshard.bench.formats TFRECORD_OUTPUT ARRAY_RECORD_OUTPUT`` takes two outputs of
the same ``vidshard shard`` command, one with ``--format array_record`` (so they hold the same
records, which is checked), and prints a Markdown table:

- **size**: bytes of the shard files (as listed and as allocated on disk) and of the records in them;
- **sequential read**: every record of every split in file order (TFRecord: framing and both CRCs
  checked; ArrayRecord: chunk hash checked and chunk decompressed), MiB/s of records;
- **shuffled read** (ArrayRecord only): every record of the split once, in a random order, by
  key, one record at a time: what an exact global shuffle costs (TFRecord cannot read by key);
- **decode**: one pass of the split through :class:`~vidshard.readers.numpy_reader.ShardReader`
  (shuffled, one clip per video, one thread) for both, and for ArrayRecord the global-shuffle
  order through :class:`~vidshard.readers.random_access.ClipDecoder`: clips/s.

Each figure is the best of ``--passes`` passes, which alternate between the formats.  The files are read from the page cache (they
were just written, or read by the first pass), so this compares the formats' CPU cost, not disks.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import numpy as np

from vidshard.format.info import load_info
from vidshard.format.file_adapters import iter_shard
from vidshard.readers.numpy_reader import ShardReader
from vidshard.readers.random_access import ClipDecoder, SplitSource


def _files(out: str) -> list[str]:
    info = load_info(out)
    return [os.path.join(out, name) for split in info.splits.values() for name in split.shards]


def measure(tfrecord_out: str, array_record_out: str, split: str = "train", passes: int = 3,
            seed: int = 0) -> dict[str, dict[str, float]]:
    """Per format: sizes, and seconds/counts of each read; the two outputs must hold the same records."""
    outputs = {"tfrecord": tfrecord_out, "array_record": array_record_out}
    for fmt, out in outputs.items():
        if load_info(out).file_format != fmt:
            raise ValueError(f"{out} holds {load_info(out).file_format} shards, expected {fmt}")
    records = {fmt: [record for path in _files(out) for record in iter_shard(path, load_info(out))]
               for fmt, out in outputs.items()}
    if records["tfrecord"] != records["array_record"]:
        raise ValueError("the two outputs do not hold the same records: shard the same source with the same options")
    result: dict[str, dict[str, float]] = {}
    timed: list[tuple[str, str, Callable[[], object]]] = []  # (format, figure, run)
    for fmt, out in outputs.items():
        info = load_info(out)
        paths = _files(out)
        result[fmt] = {
            "files": len(paths),
            "file_bytes": sum(os.path.getsize(path) for path in paths),
            "allocated_bytes": sum(os.stat(path).st_blocks * 512 for path in paths),
            "record_bytes": sum(len(record) for record in records[fmt]),
            "records": len(records[fmt]),
        }
        reader = ShardReader(out, split, batch_size=None, seed=seed, num_workers=0)
        result[fmt]["split_examples"] = reader.num_examples
        timed.append((fmt, "sequential_s", lambda paths=paths, info=info: [len(r) for p in paths for r in iter_shard(p, info)]))
        timed.append((fmt, "decode_s", lambda reader=reader: list(reader)))
        if fmt == "array_record":
            source = SplitSource(out, split)
            order = [int(key) for key in np.random.default_rng(seed).permutation(len(source))]
            decoder = ClipDecoder(source.info, source.split, len(source), seed=seed)
            timed.append((fmt, "shuffled_s", lambda: [source[key] for key in order]))
            timed.append((fmt, "decode_global_s", lambda: [decoder(key, source[key]) for key in order]))
    # Passes alternate between the formats, so a change of load on a shared machine hits both alike.
    for _ in range(passes):
        for fmt, figure, run in timed:
            started = time.perf_counter()
            run()
            seconds = time.perf_counter() - started
            result[fmt][figure] = min(seconds, result[fmt].get(figure, float("inf")))
    return result


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def to_markdown(result: dict[str, dict[str, float]], split: str) -> str:
    """The table of :func:`measure`'s result: one column per format."""
    tf, ar = result["tfrecord"], result["array_record"]
    rows = [
        ("shard files", lambda r: f"{int(r['files'])}"),
        ("size of the files", lambda r: _mib(r["file_bytes"])),
        ("allocated on disk", lambda r: _mib(r["allocated_bytes"])),
        ("records in them", lambda r: f"{int(r['records'])} records, {_mib(r['record_bytes'])}"),
        ("sequential read, all splits", lambda r: f"{r['record_bytes'] / 2**20 / r['sequential_s']:.0f} MiB/s"),
        (f"global-shuffle read by key, {split} (records/s)",
         lambda r: f"{r['split_examples'] / r['shuffled_s']:.0f}" if "shuffled_s" in r else "-"),
        (f"decode, {split}, ShardReader 1 thread (clips/s)", lambda r: f"{r['split_examples'] / r['decode_s']:.1f}"),
        (f"decode, {split}, global shuffle 1 thread (clips/s)",
         lambda r: f"{r['split_examples'] / r['decode_global_s']:.1f}" if "decode_global_s" in r else "-"),
    ]
    lines = ["| | TFRecord | ArrayRecord |", "| --- | --- | --- |"]
    lines += [f"| {name} | {cell(tf)} | {cell(ar)} |" for name, cell in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tfrecord_output")
    parser.add_argument("array_record_output")
    parser.add_argument("--split", default="train")
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args(argv)
    result = measure(args.tfrecord_output, args.array_record_output, args.split, args.passes)
    print(to_markdown(result, args.split))


if __name__ == "__main__":
    main()
