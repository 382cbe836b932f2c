"""docs/architecture.md's rules, checked on the tree: imports point down its layers, no cycles, only the CLI knows the CLI.

Every ``import`` of a vidshard module is followed, at module level and inside functions alike
(a lazy import still makes a cycle for a reader of the tree).
"""
from __future__ import annotations

import ast
import fnmatch
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Source folder -> the package it is installed as (setup.py's package_dir).
PACKAGES = {"vidshard": "vidshard", "pipelines": "vidshard.pipelines", "models": "vidshard.models"}


def _modules() -> dict[str, str]:
    """Module name -> file, for every module of the three installed trees."""
    found = {}
    for folder, package in PACKAGES.items():
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, name), os.path.join(ROOT, folder))[:-3]
                    parts = [part for part in rel.split(os.sep) if part != "__init__"]
                    found[".".join([package, *parts])] = os.path.join(dirpath, name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.endswith("__init__.py")
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                while target and target not in modules:  # import a.b.c of a module a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = _graph()
    # The walk sees real edges: a lazy import inside a function, and a module-level one.
    assert "vidshard.models.train" in graph["vidshard.cli.train_cmd"]
    assert "vidshard.format.schema" in graph["vidshard.format.info"]
    assert _cycles(graph) == []


def test_only_the_cli_and_the_shard_entry_import_the_cli():
    importers = {name for name, targets in _graph().items()
                 if any(target == "vidshard.cli" or target.startswith("vidshard.cli.") for target in targets)
                 and not name.startswith("vidshard.cli")}
    assert importers == {"vidshard.pipelines.shard"}


#: A row of docs/architecture.md's layer table: ``| N name | `module`, `package.*`, ... |``.
_LAYER_ROW = re.compile(r"^\| (\d+) [^|]*\| (.+) \|$")


def _layers() -> list[list[str]]:
    """docs/architecture.md's layers, lowest first: each a list of module names and ``package.*`` patterns."""
    with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as fh:
        rows = [_LAYER_ROW.match(line.strip()) for line in fh]
    layers = [re.findall(r"`([\w.*]+)`", row.group(2)) for row in rows if row]
    assert [int(row.group(1)) for row in rows if row] == list(range(len(layers))), "layers numbered 0, 1, ... in order"
    return layers


def _layer_of(module: str, layers: list[list[str]]) -> int | None:
    """The layer of ``module``: the last row that names it or a pattern that matches it; None if none does."""
    found = None
    for number, names in enumerate(layers):
        if any(module == name or fnmatch.fnmatchcase(module, name) for name in names):
            found = number
    return found


def _upward(graph: dict[str, set[str]], layers: list[list[str]]) -> list[str]:
    return [f"{name} (layer {_layer_of(name, layers)}) imports {target} (layer {_layer_of(target, layers)})"
            for name in sorted(graph) for target in sorted(graph[name])
            if _layer_of(target, layers) > _layer_of(name, layers)]


def test_every_module_has_a_layer():
    layers = _layers()
    assert len(layers) >= 5
    assert [name for name in sorted(_modules()) if _layer_of(name, layers) is None] == []


def test_imports_point_down_the_layers():
    layers = _layers()
    # The checker sees an upward import.
    assert _upward({"vidshard.errors": {"vidshard.cli"}, "vidshard.cli": set()}, layers) == [
        "vidshard.errors (layer 0) imports vidshard.cli (layer 7)"]
    assert _upward(_graph(), layers) == []


def _cli_options() -> set[str]:
    """Every option of every vidshard command (``--splits``, ``--format``, ...), from click itself."""
    from vidshard.cli import main

    options = set()
    for command in main.commands.values():
        for param in command.params:
            options.update(name for name in param.opts if name.startswith("--"))
    return options


def _flags_written(path: str, options: set[str]) -> list[str]:
    """The vidshard options that string literals of ``path`` spell out (docstrings left aside)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found += [f"{os.path.relpath(path, ROOT)}: {flag}" for flag in re.findall(r"--[a-z][a-z0-9-]*", node.value)
                      if flag in options]
    return found


def test_only_the_cli_knows_option_names():
    # Library messages name fields (`file_format`); the CLI writes them as its options (vidshard.cli.wording).
    options = _cli_options()
    assert {"--splits", "--format", "--n-frames"} <= options
    outside = [path for name, path in _modules().items()
               if not name.startswith(("vidshard.cli", "vidshard.bench", "vidshard.testing"))
               and name not in {"vidshard.pipelines.shard", "vidshard.demo"}]
    assert [flag for path in sorted(outside) for flag in _flags_written(path, options)] == []
