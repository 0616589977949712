"""Every notebook runs top to bottom against the database the pipeline filled."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, filled, monkeypatch):
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_URL", filled.warehouse.url)
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_DATABASE", filled.warehouse.database)
    monkeypatch.setenv("NOTEBOOK_LOOKBACK_HOURS", "1")
    monkeypatch.setenv("NOTEBOOK_COHORT_PERIOD", "minute")  # a few minutes of data: minute cohorts
    monkeypatch.setenv("NOTEBOOK_ROLLING_WINDOWS", "5")
    book = nbformat.read(path, as_version=4)
    NotebookClient(
        book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    charts = [o for o in outputs if "vegaEmbed" in o.get("data", {}).get("text/html", "")]
    assert len(charts) >= 2, "each notebook draws its charts"
