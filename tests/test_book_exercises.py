"""Every chapter of the practice, why and scale parts has an exercise with a collapsed solution,
and the code of the exercises on Markdown pages (which the book build does not run) runs."""

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(p for part in ("practice", "why", "scale") for p in (BOOK / part).glob("*.*"))
CHAPTERS = [p for p in CHAPTERS if p.suffix in (".ipynb", ".md")]
_EXERCISE = re.compile(r"^`{3,}\{admonition\} Exercise", re.M)
_SOLUTION = re.compile(r"^`{3,}\{admonition\} Solution\n:class: dropdown", re.M)


def _markdown(path: Path) -> str:
    if path.suffix == ".md":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_the_parts_have_chapters():
    assert len(CHAPTERS) >= 18


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_chapter_has_an_exercise_with_a_collapsed_solution(path):
    text = _markdown(path)
    exercises, solutions = len(_EXERCISE.findall(text)), len(_SOLUTION.findall(text))
    assert exercises >= 1, f"{path.name} has no exercise"
    assert solutions >= exercises, f"{path.name}: {exercises} exercises, {solutions} solutions"


def _exercise_code(path: Path) -> list[str]:
    """The ```python blocks inside each ````{admonition} Exercise ... ```` block of a page."""
    found = []
    for match in re.finditer(
        r"^(`{4,})\{admonition\} Exercise.*?^\1$", path.read_text(), re.M | re.S
    ):
        found += re.findall(r"^```python\n(.*?)^```$", match.group(0), re.M | re.S)
    return found


MD_PAGES = [p for p in CHAPTERS if p.suffix == ".md" and _exercise_code(p)]


@pytest.mark.parametrize("path", MD_PAGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_exercise_code_on_markdown_pages_runs(path):
    for code in _exercise_code(path):
        exec(compile(code, str(path), "exec"), {})


def test_markdown_pages_with_code_exercises_are_found():
    assert {p.name for p in MD_PAGES} >= {"summary.md", "open-questions.md", "intro.md"}
