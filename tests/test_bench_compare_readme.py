"""README's "How it compares" quotes the committed bench_compare run, figure for figure.

The README's bold figures in that section must be exactly those ``bench.bench_compare.
readme_figures`` derives from bench/results/compare.json, and the JSON's ``headlines``
must be what its rows give: re-running the benchmark without updating the README (or
editing a figure by hand) fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.bench_compare import headlines, readme_figures

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "bench" / "results" / "compare.json"


def readme_section(title: str = "## How it compares") -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:] if end < 0 else text[start:end]


def test_the_json_headlines_are_what_its_rows_give() -> None:
    result = json.loads(RESULT.read_text())
    assert result["headlines"] == headlines(result)


def figures_in(text: str) -> list[str]:
    """The bold figures of a text; bold labels ("**Upload.**") carry no digit."""
    return [q for q in re.findall(r"\*\*(.+?)\*\*", text) if any(c.isdigit() for c in q)]


def test_the_readme_quotes_the_committed_run() -> None:
    result = json.loads(RESULT.read_text())
    section = readme_section()
    assert figures_in(section) == readme_figures(result["headlines"])
    assert result["command"] in section


def test_a_figure_edited_by_hand_is_caught() -> None:
    result = json.loads(RESULT.read_text())
    section = readme_section()
    first = figures_in(section)[1]  # the streamer's upload
    edited = section.replace(f"**{first}**", "**0.1 Mbit/s**", 1)
    assert figures_in(edited) != readme_figures(result["headlines"])
