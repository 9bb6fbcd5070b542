"""The notebooks: each .ipynb is generated from its percent-format .py and
committed without outputs, and each runs top to bottom, drawing figures that
are not blank.

They run with their size settings made smaller (`QUICK`, as papermill
injects parameters): every cell and figure runs, on fewer images and epochs
than a reader's run, so that the suite stays within its budget. The
notebooks run in order in one folder, so that 04 exports the run that 02
trained (each also trains it itself when run alone).
"""

import base64
import io
import os
import re

import jupytext
import nbclient
import nbformat
import numpy as np
import pytest
from PIL import Image

NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "notebooks")
# Settings each notebook assigns at the top (`NAME = value`), replaced in
# the test run; every name must be found, so a renamed setting fails here.
QUICK = {
    "01_quickstart": {"NUM_IMAGES": 120, "EPOCHS": 2},
    "02_what_the_model_looks_at": {"NUM_IMAGES": 120, "EPOCHS": 2},
    "03_distributed_training": {"NUM_IMAGES": 100},
    "04_quantize_and_export": {"NUM_IMAGES": 120, "EPOCHS": 2},
    "05_video_question_answering": {"NUM_CLIPS": 40, "MINUTES": 0.25},
}
NAMES = tuple(QUICK)
TIME_LIMIT_S = 300


def _sources(notebook):
    return [(c.cell_type, c.source) for c in notebook.cells]


def test_every_notebook_is_listed_here():
    found = sorted(os.path.splitext(f)[0] for f in os.listdir(NOTEBOOKS) if f.endswith(".py"))
    assert found == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_is_generated_from_py_and_has_no_outputs(name):
    ipynb = nbformat.read(os.path.join(NOTEBOOKS, name + ".ipynb"), as_version=4)
    source = jupytext.read(os.path.join(NOTEBOOKS, name + ".py"))
    assert _sources(ipynb) == _sources(source), f"run `make notebooks` to regenerate {name}.ipynb"
    for cell in ipynb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name}: outputs committed"


def with_settings(notebook, settings):
    """`notebook` with each `NAME = value` line of its code cells replaced."""
    found = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for name, value in settings.items():
            pattern = re.compile(rf"^{name} = .*$", re.MULTILINE)
            if pattern.search(cell.source):
                cell.source = pattern.sub(f"{name} = {value!r}", cell.source)
                found.add(name)
    missing = sorted(set(settings) - found)
    assert not missing, f"no `NAME = ...` line for {missing} in the notebook"
    return notebook


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("notebooks"))


def _figures(notebook):
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                png = base64.b64decode(output["data"]["image/png"])
                yield np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_and_draws(name, workdir):
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name + ".ipynb"), as_version=4)
    notebook = with_settings(notebook, QUICK[name])
    client = nbclient.NotebookClient(
        notebook,
        timeout=TIME_LIMIT_S,  # per cell
        kernel_name="python3",
        resources={"metadata": {"path": workdir}},
    )
    client.execute()  # raises CellExecutionError, with the cell's traceback, on any error

    figures = list(_figures(notebook))
    assert figures, f"{name} drew no figure"
    for i, pixels in enumerate(figures):
        # A blank figure is one colour; a drawn one has many and some spread.
        colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
        assert colours > 50 and pixels.std() > 10, f"{name}: figure {i} looks blank"
