"""``vidshard list SOURCE``: what a source holds, per UCF101 class, before anything is decoded.

It reads only the listing (for a remote zip: its central directory, by HTTP Range), so it is the
cheap way to check a source and choose ``--num-classes`` / ``--splits`` for ``vidshard shard``.
"""
from __future__ import annotations

import json
import sys
import urllib.parse

import click
from tqdm import tqdm

from vidshard.catalog import Catalog
from vidshard.cli.selection import catalog_options
from vidshard.cli.store_options import object_store_options
from vidshard.planning import Selection, catalog_of, read_rows
from vidshard.sources import Member, check_source, open_source


def summarize(catalog: Catalog, source: str) -> dict:
    """Per class the videos, groups and bytes, in sorted class order; totals; unmatched names."""
    per_class = {name: {"videos": 0, "groups": set(), "bytes": 0} for name in catalog.class_names}
    for entry in catalog.entries:
        row = per_class[entry.class_name]
        row["videos"] += 1
        row["groups"].add(entry.group)
        row["bytes"] += entry.size
    classes = [
        {"name": name, "videos": row["videos"], "groups": len(row["groups"]), "bytes": row["bytes"]}
        for name, row in per_class.items()
    ]
    return {
        "source": source,
        "classes_from": catalog.naming,
        "classes": classes,
        "total": {
            "classes": len(classes),
            "videos": sum(row["videos"] for row in classes),
            "groups": sum(row["groups"] for row in classes),  # UCF101 groups are numbered per class
            "bytes": sum(row["bytes"] for row in classes),
        },
        "unmatched": {"count": len(catalog.unmatched), "names": list(catalog.unmatched)},
    }


def _human_bytes(count: int) -> str:
    value, unit = float(count), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"


def format_summary(summary: dict) -> str:
    """The summary as an aligned text table, one class per line, totals last."""
    total = summary["total"]
    rows = [(row["name"], row["videos"], row["groups"], row["bytes"]) for row in summary["classes"]]
    rows.append((f"total ({total['classes']} classes)", total["videos"], total["groups"], total["bytes"]))
    width = max(len("class"), *(len(row[0]) for row in rows))
    header = f"{'class':<{width}}  {'videos':>6}  {'groups':>6}  {'bytes':>10}"
    lines = [f"source: {summary['source']}", f"classes from: {_CLASSES_FROM[summary['classes_from']]}", header]
    for name, videos, groups, size in rows:
        lines.append(f"{name:<{width}}  {videos:>6}  {groups:>6}  {_human_bytes(size):>10}")
    unmatched = summary["unmatched"]["count"]
    hint = " (--json lists them)" if unmatched else ""
    lines.append(f"{_UNMATCHED[summary['classes_from']]}: {unmatched}{hint}")
    return "\n".join(lines)


#: How ``list`` says where classes came from, and what the members without a class are.
_CLASSES_FROM = {"ucf101": "UCF101 file names (v_<Class>_g<GG>_c<CC>)",
                 "folder": "<class>/ folders (no UCF101 names found)", "manifest": "the manifest"}
_UNMATCHED = {"ucf101": "video members not named v_<Class>_g<GG>_c<CC>",
              "folder": "video members in no <class>/ folder", "manifest": "video members the manifest does not list"}


def _list_members(source: str) -> list[Member]:
    """List the source's video members.

    Reading a remote zip's central directory takes seconds (UCF101's lists 13,320 members), so
    for an http(s) source a tqdm status line on stderr says what is being waited for; it is
    cleared when done, and off when stderr is not a terminal, so stdout stays clean for ``--json``.
    """
    remote = urllib.parse.urlsplit(source).scheme.lower() in ("http", "https", "s3", "gs")
    check_source(source)
    with tqdm(desc=f"listing {source}", bar_format="{desc} [{elapsed}]", file=sys.stderr, leave=False,
              disable=None if remote else True):
        with open_source(source) as opened:
            return opened.list_members()


@click.command("list")
@click.argument("source")
@catalog_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (with the unmatched names).")
@object_store_options(beam_too=True)
def list_command(source: str, manifest: str | None, path_template: str | None, group_pattern: str | None,
                 as_json: bool) -> None:
    """Count the videos, groups and bytes per class in SOURCE (http(s) zip URL, s3:// or gs:// zip or prefix/,
    local zip or folder)."""
    rows = read_rows(Selection(manifest=manifest, path_template=path_template), source)
    summary = summarize(catalog_of(_list_members(source), rows, group_pattern), source)
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))
