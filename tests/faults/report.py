"""The fault suite's results: one row per scenario, printed as a table and written as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

COLUMNS = (
    ("scenario", "scenario"),
    ("faults_injected", "faults injected"),
    ("runs", "runs"),
    ("duplicate_deliveries", "duplicate deliveries seen"),
    ("duplicate_effects", "duplicate effects"),
    ("lost_work", "lost work"),
    ("conservation_difference", "conservation difference"),
    ("runs_left_open", "runs left open"),
    ("seconds", "seconds"),
)


@dataclasses.dataclass
class ScenarioResult:
    scenario: str
    faults_injected: int
    runs: int
    duplicate_deliveries: int
    duplicate_effects: int
    lost_work: int
    conservation_difference: int
    runs_left_open: int
    seconds: float
    details: dict


RESULTS: list[ScenarioResult] = []


def table(results: list[ScenarioResult]) -> str:
    """A Markdown table, so the README can carry it as printed."""
    rows = [[title for _key, title in COLUMNS]]
    rows += [[str(getattr(result, key)) for key, _title in COLUMNS] for result in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join("-" * (width + 1) + ("-" if i == 0 else ":") for i, width in enumerate(widths))
        + "|"
    )
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])


def write_json(results: list[ScenarioResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps([dataclasses.asdict(result) for result in results], indent=2, default=str) + "\n"
    )


def results_path() -> Path | None:
    """Where FAULTS_RESULTS asks for the JSON (set by `python -m tests.faults`)."""
    value = os.environ.get("FAULTS_RESULTS")
    return Path(value) if value else None
