"""docs/quickstart.ipynb runs top to bottom in a real Jupyter kernel and shows tqdm.auto's progress widgets.

Needs the ``notebook`` extra (nbclient, ipykernel, ipywidgets); skips without it, naming it.
"""
from __future__ import annotations

import importlib.util
import os

import pytest

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "quickstart.ipynb")
WIDGET = "application/vnd.jupyter.widget-view+json"


def test_the_quickstart_notebook_runs_and_shows_progress(tmp_path):
    missing = [name for name in ("nbclient", "nbformat", "ipykernel", "ipywidgets") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (the notebook extra): pip install -e '.[notebook]'")
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert "24 videos of 3 classes" in text and "Complete: " in text
    assert "12 clips, frames uint8 (8, 32, 32, 3), labels int64" in text  # 6 of train, all 6 of val
    assert "test[-50%:] holds 3 of the 6 test videos" in text
    widgets = [output for output in outputs if output.output_type == "display_data" and WIDGET in output.data]
    assert len(widgets) >= 2  # the sharding bar and the reading bar, as Jupyter widgets
