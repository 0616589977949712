"""The fault suite's figures: one row per scenario, printed as a table at the end of the run and
written to ``test-artifacts/faults.md`` (the README's table is copied from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.faults import Exactness

ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "faults.md"


@dataclass(frozen=True)
class Figures:
    """One scenario's row of the table."""

    scenario: str
    result: Exactness
    recover_s: float | None
    note: str = ""

    def cells(self) -> list[str]:
        r = self.result
        recover = "–" if self.recover_s is None else f"{self.recover_s:.1f}"
        return [
            self.scenario,
            f"{r.acknowledged:,}",
            f"{r.stored:,}",
            f"{r.missing:,}",
            f"{r.duplicates:,}",
            f"{len(r.differences):,}",
            recover,
            self.note,
        ]


HEADER = ["scenario", "acknowledged", "stored", "missing", "duplicates", "window differences", "recover (s)", "notes"]
_FIGURES: list[Figures] = []


@pytest.fixture
def record():
    """``record(scenario, exactness, recover_s, note)``: add a row to the run's table."""

    def add(scenario: str, result: Exactness, recover_s: float | None = None, note: str = "") -> None:
        _FIGURES.append(Figures(scenario, result, recover_s, note))

    return add


def table(rows: list[Figures]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    text = table(_FIGURES)
    terminalreporter.write_sep("=", "fault suite: acknowledged events against the warehouse")
    terminalreporter.write_line(text)
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(text)
    terminalreporter.write_line(f"(written to {ARTIFACT})")
