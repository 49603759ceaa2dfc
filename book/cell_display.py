"""How code cells appear on the page: checks folded into labelled boxes, setup cells removed.

Every claim in the book is checked by an ``assert`` in a cell after the result. Those cells stay
on the page as evidence, but folded: the reader sees one line, "Checked when this page is built:
<what is checked>", and can open the box to read the code. myst-nb does this for a cell tagged
``hide-input`` whose metadata carries ``mystnb.code_prompt_show`` (and ``code_prompt_hide``).

A *check cell* is a code cell with a top-level ``assert`` that shows nothing: no ``print``,
``display``, figure or final expression (see :func:`is_check_cell`). The sentence for each one is
kept in the notebook, in the cell's metadata. Run::

    python book/cell_display.py                                   # list check cells without a box
    python book/cell_display.py set book/x.ipynb#<cell id> "what the cell checks."

A *setup cell* only imports, seeds random generators or applies the figure style
(:func:`is_setup_cell`); it runs but is not shown (tag ``remove-cell``).

``tests/test_website.py`` fails on any check cell without its box and any setup cell shown.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Checked when this page is built: "
HIDE = "Hide the check"
_SHOWS = ("print(", "display(", "plt.", "plot_", ".show(")
_SETUP_CALLS = {
    "style.use",
    "torch.manual_seed",
    "torch.set_num_threads",
    "np.random.seed",
    "warnings.filterwarnings",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else "?"


def is_setup_cell(cell: dict) -> bool:
    """True for a code cell that only imports, seeds or applies the book's style.

    Parameters
    ----------
    cell : dict
        A notebook cell as stored in the .ipynb file.

    Returns
    -------
    bool
    """
    if cell["cell_type"] != "code":
        return False
    try:
        body = ast.parse("".join(cell["source"])).body
    except SyntaxError:  # IPython magics (an install cell): not setup in this sense
        return False
    return bool(body) and all(
        isinstance(s, (ast.Import, ast.ImportFrom))
        or (
            isinstance(s, ast.Expr)
            and isinstance(s.value, ast.Call)
            and _dotted(s.value.func) in _SETUP_CALLS
        )
        for s in body
    )


def is_removed(cell: dict) -> bool:
    """True when the cell's input is not shown on the page.

    Parameters
    ----------
    cell : dict

    Returns
    -------
    bool
    """
    tags = cell.get("metadata", {}).get("tags", [])
    return bool({"remove-cell", "remove-input"} & set(tags))


def is_check_cell(cell: dict) -> bool:
    """True for a code cell that asserts something and shows nothing.

    Parameters
    ----------
    cell : dict
        A notebook cell as stored in the .ipynb file.

    Returns
    -------
    bool
    """
    if cell["cell_type"] != "code":
        return False
    source = "".join(cell["source"])
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    if not any(isinstance(s, ast.Assert) for s in body):
        return False
    if any(word in source for word in _SHOWS):
        return False
    last = body[-1]
    return not (isinstance(last, ast.Expr) and not isinstance(last.value, ast.Call))


def has_box(cell: dict) -> bool:
    """True when the cell is folded with a "Checked when this page is built: ..." prompt.

    Parameters
    ----------
    cell : dict

    Returns
    -------
    bool
    """
    meta = cell.get("metadata", {})
    prompt = meta.get("mystnb", {}).get("code_prompt_show", "")
    tags = meta.get("tags", [])
    sentence = prompt.removeprefix(PROMPT)
    return (
        "hide-input" in tags
        and prompt.startswith(PROMPT)
        and len(sentence.split()) >= 4
        and sentence.rstrip().endswith(".")
    )


def notebooks() -> list[Path]:
    """Every notebook of the book.

    Returns
    -------
    list of Path
    """
    return sorted(
        p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )


def missing() -> list[str]:
    """``path#id`` of every check cell without its box.

    Returns
    -------
    list of str
    """
    out = []
    for path in notebooks():
        for cell in json.loads(path.read_text())["cells"]:
            if is_check_cell(cell) and not has_box(cell):
                out.append(f"{path.relative_to(ROOT).as_posix()}#{cell.get('id')}")
    return out


def apply(sentences: dict[str, str]) -> int:
    """Fold the check cells named in ``sentences`` into labelled boxes.

    Parameters
    ----------
    sentences : dict
        ``"book/x.ipynb#<cell id>"`` -> the sentence shown after :data:`PROMPT`.

    Returns
    -------
    int
        The number of cells given a box.

    Raises
    ------
    ValueError
        If a named cell does not exist or is not a check cell.
    """
    by_path: dict[str, dict[str, str]] = {}
    for key, sentence in sentences.items():
        path, _, cell_id = key.partition("#")
        by_path.setdefault(path, {})[cell_id] = sentence
    changed = 0
    for rel, cells in by_path.items():
        path = ROOT / rel
        nb = json.loads(path.read_text())
        found = {c.get("id"): c for c in nb["cells"]}
        for cell_id, sentence in cells.items():
            cell = found.get(cell_id)
            if cell is None or not is_check_cell(cell):
                raise ValueError(f"{rel}#{cell_id} is not a check cell of that notebook")
            meta = cell.setdefault("metadata", {})
            tags = meta.setdefault("tags", [])
            if "hide-input" not in tags:
                tags.append("hide-input")
            meta.setdefault("mystnb", {}).update(
                {"code_prompt_show": PROMPT + sentence, "code_prompt_hide": HIDE}
            )
            changed += 1
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    return changed


if __name__ == "__main__":
    if sys.argv[1:2] == ["set"] and len(sys.argv) == 4:
        apply({sys.argv[2]: sys.argv[3]})
    left = missing()
    for name in left:
        print(f"no box: {name}")
    sys.exit(1 if left else 0)
