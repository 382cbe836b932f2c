"""``vidshard audit DATA_DIR``: one self-contained HTML page about an audited output (issue 24).

Everything is inside the page: histograms drawn with matplotlib as base64 PNG (each signal's
threshold as a red line), thumbnail strips of flagged videos as base64 JPEG (their stored frames,
read from the shards; a video left out by ``--exclude`` has none), and plain HTML tables:
per-split and per-class counts and durations, the flagged videos, the duplicate pairs side by
side, and ``errors.jsonl``.  At UCF101's size the flagged table is capped (``max_flagged`` rows
with thumbnails, the rest listed by id in a collapsed section) so the page stays small; the
counts are always complete.
"""
from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter, defaultdict
from typing import Any, Iterable, Mapping, Sequence

import cv2
import numpy as np
from matplotlib.figure import Figure

from vidshard.errors import ShardFormatError
from vidshard.format import storage
from vidshard.format.info import ERRORS_FILE, DatasetInfo, load_info
from vidshard.format.schema import parse_example, video_id_of
from vidshard.format.file_adapters import iter_shard
from vidshard.format.splits import split_files
from vidshard.quality.flags import FLAGS, RULES, Thresholds
from vidshard.quality.table import QUALITY_FILE, SUMMARISED

#: Thumbnails per strip, and the strip's frame height (pixels).
STRIP_FRAMES, STRIP_HEIGHT = 5, 48
_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}th{background:#eee}
.hist{display:inline-block;margin:4px}.flag{background:#fdd;border-radius:3px;padding:0 4px;margin-right:3px}
img.strip{height:48px}"""


def read_rows(data_dir: str) -> list[dict[str, Any]]:
    """The rows of ``quality.jsonl``; a clear error when the output was not audited."""
    path = storage.join(data_dir, QUALITY_FILE)
    if not storage.exists(path):
        raise ShardFormatError(f"{data_dir} has no {QUALITY_FILE}: shard it with `audit` (or `exclude`) first")
    return [json.loads(line) for line in storage.read_text(path).splitlines() if line.strip()]


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def histograms(rows: Sequence[Mapping[str, Any]], thresholds: Thresholds) -> list[tuple[str, str]]:
    """``(signal, PNG data URI)`` for every summarised signal; its threshold drawn in red where one applies."""
    limits = {signal: getattr(thresholds, field) for signal, _, field in RULES.values()}
    out = []
    for name in SUMMARISED:
        values = np.asarray([row[name] for row in rows if isinstance(row.get(name), (int, float))], np.float64)
        if not len(values):
            continue
        figure = Figure(figsize=(3.2, 2.2))
        axes = figure.add_subplot()
        axes.hist(values, bins=40, color="#4878a8")
        if name in limits:
            axes.axvline(limits[name], color="red", linewidth=1.5)
        axes.set_title(name, fontsize=9)
        axes.tick_params(labelsize=7)
        figure.tight_layout()
        out.append((name, _png(figure)))
    return out


def strips(data_dir: str, info: DatasetInfo, wanted: Iterable[str]) -> dict[str, str]:
    """``video_id -> JPEG data URI``: up to :data:`STRIP_FRAMES` stored frames side by side, for the wanted
    videos found in the shards (each record's id read first; only the wanted ones are decoded)."""
    wanted = set(wanted)
    found: dict[str, str] = {}
    for split in info.splits:
        if len(found) == len(wanted):
            break
        _, paths = split_files(data_dir, split)
        for path in paths:
            for serialized in iter_shard(path, info, verify=False):
                if video_id_of(serialized) not in wanted:
                    continue
                record = parse_example(serialized, info.encoding)
                frames = record.frames.reshape(-1, *record.frames.shape[-3:])
                picks = frames[np.linspace(0, len(frames) - 1, min(STRIP_FRAMES, len(frames))).round().astype(int)]
                width = round(STRIP_HEIGHT * picks.shape[2] / picks.shape[1])
                strip = np.concatenate([cv2.resize(frame, (width, STRIP_HEIGHT), interpolation=cv2.INTER_AREA)
                                        for frame in picks], axis=1)
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(strip, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
                if ok:
                    found[record.video_id] = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")
    return found


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(uri: str | None) -> str:
    return f'<img class="strip" src="{uri}">' if uri else "<i>not stored</i>"


def render(data_dir: str, max_flagged: int = 300) -> str:
    """The page (see the module docstring)."""
    info = load_info(data_dir)
    rows = read_rows(data_dir)
    quality = info.extra.get("quality", {})
    thresholds = Thresholds(**quality["thresholds"]) if "thresholds" in quality else Thresholds()
    errors_path = storage.join(data_dir, ERRORS_FILE)
    errors = [json.loads(line) for line in storage.read_text(errors_path).splitlines() if line.strip()] \
        if storage.exists(errors_path) else []
    escape = html.escape
    counts = Counter((row["split"], row["class_name"]) for row in rows)
    seconds: dict[tuple[str, str], float] = defaultdict(float)
    for row in rows:
        seconds[(row["split"], row["class_name"])] += row.get("duration") or 0.0
    splits = sorted({row["split"] for row in rows})
    classes = sorted({row["class_name"] for row in rows})
    count_rows = [[escape(name)] + [f"{counts[(split, name)]} ({seconds[(split, name)] / 60:.1f} min)" for split in splits]
                  for name in classes]
    count_rows.append(["<b>all</b>"] + [f"<b>{sum(counts[(split, name)] for name in classes)}</b> "
                                        f"({sum(seconds[(split, name)] for name in classes) / 60:.1f} min)"
                                        for split in splits])
    flagged = [row for row in rows if row["flags"]]
    shown = flagged[:max_flagged]
    pairs = {}
    for row in rows:
        for other in row.get("duplicates", []):
            pairs[tuple(sorted((row["video_id"], other["video_id"])))] = (other["bits"], row, other)
    pair_list = sorted(pairs.items())[:max_flagged]
    thumbs = strips(data_dir, info, [row["video_id"] for row in shown] + [video for key, _ in pair_list for video in key])
    by_id = {row["video_id"]: row for row in rows}
    flag_counts = Counter(flag for row in rows for flag in row["flags"])
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>vidshard audit</title><style>{_STYLE}</style>"
             f"</head><body><h1>Audit of {escape(data_dir)}</h1>",
             f"<p id='totals'>{len(rows)} videos audited, {len(flagged)} flagged, {len(pairs)} duplicate pairs, "
             f"{len(errors)} errors.</p>",
             "<h2>Flags</h2>" + _table(["flag", "videos"], [[f, str(flag_counts[f])] for f in FLAGS], "flags"),
             "<h2>Videos per split and class (duration)</h2>" + _table(["class", *splits], count_rows, "counts"),
             "<h2>Signals</h2><p>Red: the threshold of the flag the signal raises.</p>"
             + "".join(f'<div class="hist"><img alt="{name}" src="{uri}"></div>' for name, uri in histograms(rows, thresholds)),
             f"<h2>Flagged videos</h2><p>{len(flagged)} flagged"
             + (f"; the first {max_flagged} shown with thumbnails" if len(flagged) > max_flagged else "") + ".</p>"
             + _table(["video", "split", "class", "flags", "stored frames"],
                      [[escape(row["video_id"]), escape(row["split"]), escape(row["class_name"]),
                        "".join(f'<span class="flag">{escape(flag)} {value:g}</span>' for flag, value in row["flags"].items()),
                        _img(thumbs.get(row["video_id"]))] for row in shown], "flagged")]
    if len(flagged) > max_flagged:
        parts.append("<details><summary>the other flagged videos</summary><ul>" + "".join(
            f"<li>{escape(row['video_id'])}: {escape(', '.join(row['flags']))}</li>" for row in flagged[max_flagged:])
            + "</ul></details>")
    parts.append("<h2>Duplicate pairs</h2>" + _table(
        ["bits", "video", "split", "stored frames", "copy", "split", "stored frames"],
        [[str(bits), escape(a), escape(by_id[a]["split"]), _img(thumbs.get(a)), escape(b), escape(by_id[b]["split"]),
          _img(thumbs.get(b))] for (a, b), (bits, _, _) in pair_list], "pairs"))
    parts.append("<h2>Errors</h2>" + _table(["video", "split", "stage", "reason"], [
        [escape(error["video_id"]), escape(error["split"]), escape(error["stage"]), escape(error["reason"])]
        for error in errors], "errors"))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(data_dir: str, out: str, max_flagged: int = 300) -> int:
    """Write the page to ``out``; return its size in bytes."""
    page = render(data_dir, max_flagged).encode("utf-8")
    with open(out, "wb") as fh:
        fh.write(page)
    return len(page)
