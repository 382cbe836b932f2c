"""Choose the Keras backend (TensorFlow, JAX or PyTorch) of this process, before Keras is imported.

Keras reads ``KERAS_BACKEND`` once, when ``keras`` is first imported, and cannot switch backends
afterwards.  So the choice is made by setting that variable in-process before anything imports
Keras: the ``vidshard`` group imports no Keras (a test checks), and ``vidshard train``,
``vidshard bench-train`` and ``python -m vidshard.bench.train_step`` call :func:`use_backend`
first and import their Keras code after it.  Setting the variable in-process was preferred over
re-executing the interpreter with it: one process keeps click's error handling and exit codes, the
user's signals and ``CliRunner`` tests as they are.  Where Keras is already imported (a notebook,
a test process), :func:`use_backend` only checks that it runs on the backend asked for, and says
how to get another one.

On JAX and PyTorch, :func:`tensorflow_kept_out` also keeps Keras from importing TensorFlow on its
own: Keras 3 imports TensorFlow whenever it is installed, whatever the backend, to seed it
(``keras.utils.set_random_seed``) and to check saved objects against its types (``model.save``).

This module imports neither Keras nor any backend.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from typing import Iterator

from vidshard.errors import VidshardError

BACKENDS: tuple[str, ...] = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"

#: What to install for a backend that is missing.
_INSTALL = {"tensorflow": "pip install tensorflow", "jax": "pip install 'jax[cpu]' (or jax[cuda12])",
            "torch": "pip install torch"}


def check_backend(name: str) -> str:
    """Return ``name`` if it is a Keras backend vidshard supports, else raise :class:`VidshardError`."""
    if name not in BACKENDS:
        raise VidshardError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def loaded_backend() -> str | None:
    """The backend Keras runs on in this process, or None when Keras is not imported yet."""
    keras = sys.modules.get("keras")
    return None if keras is None else keras.backend.backend()


def use_backend(name: str) -> None:
    """Make Keras run on ``name`` in this process.

    Before Keras is imported this sets ``KERAS_BACKEND`` (overriding the environment's value and
    ``~/.keras/keras.json``); afterwards it only checks that Keras already runs on ``name``.
    Raises :class:`VidshardError` for an unknown or uninstalled backend and for a process whose
    Keras runs on another one.
    """
    check_backend(name)
    current = loaded_backend()
    if current is None:
        if importlib.util.find_spec(name) is None:
            raise VidshardError(f"backend {name!r} is not installed: {_INSTALL[name]}")
        os.environ["KERAS_BACKEND"] = name
    elif current != name:
        raise VidshardError(f"Keras is already imported in this process and runs on {current}, not {name}; "
                            f"Keras cannot switch backends, so start a new process (vidshard commands choose "
                            f"with `backend` {name}; in Python set KERAS_BACKEND={name} before importing keras)")


class _RefuseTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """An import hook under which ``import tensorflow`` raises ``ModuleNotFoundError``.

    It answers ``find_spec`` with a spec (no origin) rather than raising there, because some
    libraries probe with ``importlib.util.find_spec("tensorflow")`` without importing (PyTorch's
    dynamo does, when Keras loads it); the import itself fails when the module is created.
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        raise ModuleNotFoundError("TensorFlow is kept out of this process (Keras runs on another backend)",
                                  name=spec.name)

    def exec_module(self, module: object) -> None:  # never reached: create_module raises
        raise ModuleNotFoundError("TensorFlow is kept out of this process")


@contextlib.contextmanager
def tensorflow_kept_out() -> Iterator[None]:
    """While the block runs, ``import tensorflow`` fails, so Keras's optional TensorFlow extras stay off.

    For processes that run Keras on JAX or PyTorch: they need nothing from TensorFlow, whose
    import costs seconds and memory and, on a GPU, can initialise CUDA beside the real backend.
    A finder first on ``sys.meta_path`` refuses the import (a ``None`` entry in ``sys.modules``
    would too, but Keras takes ``"tensorflow" in sys.modules`` to mean TensorFlow is loaded).
    Keras then treats TensorFlow as not installed (it seeds the other RNGs and saves models
    without it) and remembers that for the rest of the process.  Does nothing where TensorFlow is
    already imported.  Code that imports TensorFlow itself inside the block fails, which is how
    the tests find a TensorFlow import on the JAX and PyTorch paths.
    """
    if "tensorflow" in sys.modules:
        yield
        return
    finder = _RefuseTensorFlow()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def run_backend(run_dir: str | os.PathLike, config_file: str = "config.json") -> str:
    """The backend a training run in ``run_dir`` was started with (``DEFAULT_BACKEND`` when unknown).

    Read without Keras, so that ``vidshard train --resume`` can pick the run's backend before
    importing it; a missing or unreadable ``config.json`` is left for the trainer to report.
    """
    try:
        with open(os.path.join(os.fspath(run_dir), config_file), encoding="utf-8") as fh:
            stored = json.load(fh).get("train", {}).get("backend", DEFAULT_BACKEND)
    except (OSError, ValueError, AttributeError):
        return DEFAULT_BACKEND
    return check_backend(stored)
