"""Write a notebook from a plain-text cell script (an authoring aid; the notebook is the source).

The script is a sequence of cells, each opened by a marker line:

    %% md        a markdown cell
    %% code      a code cell
    %% raw       a raw cell

Usage: python tools/py2nb.py SCRIPT NOTEBOOK
Writes an nbformat-4 notebook with empty outputs; run it with `make chapter NB=...` to fill them.
"""
import json, re, sys, uuid
from pathlib import Path

_MARK = re.compile(r"^%% (md|code|raw)\s*$")


def parse(text):
    "Split `text` into `(kind, source)` pairs at the `%% kind` marker lines."
    cells, kind, buf = [], None, []
    for line in text.splitlines():
        m = _MARK.match(line)
        if m:
            if kind is not None: cells.append((kind, "\n".join(buf).strip("\n")))
            kind, buf = m.group(1), []
        elif kind is None:
            if line.strip(): raise ValueError(f"text before the first '%% kind' marker: {line!r}")
        else: buf.append(line)
    if kind is not None: cells.append((kind, "\n".join(buf).strip("\n")))
    return cells


def to_notebook(cells):
    "An nbformat-4 notebook dict holding `cells`."
    out = []
    for kind, src in cells:
        lines = src.splitlines(keepends=True)
        cell = {"cell_type": {"md": "markdown"}.get(kind, kind), "id": uuid.uuid4().hex[:8],
                "metadata": {}, "source": lines}
        if kind == "code": cell.update(execution_count=None, outputs=[])
        out.append(cell)
    meta = {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}}
    return {"cells": out, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


if __name__ == "__main__":
    if len(sys.argv) != 3: sys.exit(__doc__)
    src, dst = map(Path, sys.argv[1:])
    nb = to_notebook(parse(src.read_text()))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {dst} ({len(nb['cells'])} cells)")
