"""Every notebook in notebooks/ runs from top to bottom (small CPU settings; new notebooks are picked up)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NEEDS_DATA = {"04_crosslingual_alignreg.ipynb"}  # XNLI and SNLI from the shared data folder


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "path",
    [pytest.param(path, marks=pytest.mark.needs_data) if path.name in NEEDS_DATA else path for path in NOTEBOOKS],
    ids=lambda path: path.name,
)
def test_notebook_runs(path: Path) -> None:
    if path.name in NEEDS_DATA and not os.environ.get("LIGHTNING_COMPRESS_DATA"):
        pytest.skip("LIGHTNING_COMPRESS_DATA is not set")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
