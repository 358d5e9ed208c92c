"""Audit and execute the book's notebooks (used by `make test`, `make chapter` and tests/).

    python tools/nbrun.py audit [NB ...]          list what would make a notebook or cell not run
    python tools/nbrun.py run NB [--scale S] [--save]
                                                  execute NB at scale S (quick|full) with nbdev's
                                                  flags; --save writes the outputs back (full runs)

A passing notebook test must mean that every cell ran. `audit` therefore reports every way a
notebook or cell can be skipped or can break the docs build: front matter `skip_exec`,
`eval: false`, directives nbdev and Quarto do not know (a typo such as `#| slwo` would be taken
as a flag), notebooks nbdev would not collect, saved error outputs, and cells that mix imports
with other code (nbdev's doc processing executes such cells outside of their notebook).
`slow` cells are the one allowed skip: they run with `NBDEV_FLAGS=slow` and in `make chapter`.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
SKIP_FLAGS = ("slow",)  # keep in step with `tst_flags` in pyproject.toml

# Cell directives that change how a cell is exported, shown or executed.
NBDEV_DIRECTIVES = {
    "default_exp", "export", "exports", "exporti", "export_", "hide", "hide_line", "filter_stream",
    "exec_doc", "collapse_input", "collapse_output", "eval",
}
QUARTO_OPTIONS = {
    "echo", "output", "include", "code-fold", "code-summary", "code-line-numbers", "label",
    "fig-cap", "fig-alt", "fig-align", "fig-width", "fig-height", "tbl-cap", "tbl-colwidths",
    "layout-ncol", "layout-nrow", "column", "warning", "error", "classes",
}
KNOWN = NBDEV_DIRECTIVES | QUARTO_OPTIONS | set(SKIP_FLAGS)
_DIRECTIVE = re.compile(r"^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*)$")


def notebooks(paths=None) -> list[Path]:
    "All notebooks of the book (or those under `paths`), excluding build folders and checkpoints."
    roots = [Path(p) for p in paths] if paths else [NBS]
    found = []
    for r in roots:
        found += [r] if r.suffix == ".ipynb" else sorted(r.rglob("*.ipynb"))
    return [p.resolve() for p in found if ".ipynb_checkpoints" not in p.parts and "_proc" not in p.parts]


def _directives(src: str) -> list[tuple[str, str]]:
    out = []
    for line in src.splitlines():
        if not line.strip(): continue
        m = _DIRECTIVE.match(line)
        if not m: break
        out.append((m.group(1), m.group(2).strip()))
    return out


def _mixes_imports(src: str) -> bool:
    "True if the cell imports anywhere and also runs top-level code other than imports and defs."
    code = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))
    try: tree = ast.parse(code)
    except SyntaxError: return False
    imports = (ast.Import, ast.ImportFrom)
    if not any(isinstance(n, imports) for n in ast.walk(tree)): return False
    inert = imports + (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return any(not isinstance(n, inert) for n in tree.body)


def audit(nb_path: Path) -> list[str]:
    "Problems that would make `nb_path` skip cells or break the docs build."
    nb_path = Path(nb_path).resolve()
    rel = nb_path.relative_to(ROOT) if nb_path.is_relative_to(ROOT) else nb_path
    nb = json.loads(nb_path.read_text())
    problems = []
    rel_nbs = nb_path.relative_to(NBS) if nb_path.is_relative_to(NBS) else nb_path
    if any(part.startswith(("_", ".")) for part in rel_nbs.parts[:-1]):
        problems.append("lives in a folder starting with '_' or '.', which nbdev-test skips")
    for folder in nb_path.parents:
        if (folder / ".notest").exists(): problems.append(f"{folder} holds a .notest file")
        if folder == NBS: break
    for i, cell in enumerate(nb["cells"]):
        src = "".join(cell.get("source", []))
        if cell["cell_type"] == "raw" and re.search(r"^skip_exec:\s*true", src, re.M | re.I):
            problems.append(f"cell {i}: front matter `skip_exec: true` skips the whole notebook")
        if cell["cell_type"] == "markdown" and re.search(r"^-?\s*skip_exec:\s*true", src, re.M | re.I):
            problems.append(f"cell {i}: front matter `skip_exec: true` skips the whole notebook")
        if cell["cell_type"] != "code": continue
        dirs = _directives(src)
        for name, value in dirs:
            if name not in KNOWN:
                problems.append(f"cell {i}: unknown directive `#| {name}`")
            if name == "eval" and value.lower() in ("false", "no", "0"):
                problems.append(f"cell {i}: `#| eval: false` never runs")
        names = {n for n, _ in dirs}
        if not names & {"export", "exports", "exporti", "export_", "exec_doc"} and _mixes_imports(src):
            problems.append(f"cell {i}: mixes imports with other code (nbdev's doc processing "
                            "runs every cell that imports); put the imports in a cell of their own")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: saved with an error output ({out.get('ename')})")
    return [f"{rel}: {p}" for p in problems]


def run(nb_path: Path, scale: str = "quick", save: bool = False, flags: str = "") -> bool:
    "Execute `nb_path` with nbdev's test runner at `scale`; `save` writes outputs back."
    from nbdev.test import test_nb
    os.environ["PHYSML_SCALE"] = scale
    os.environ.setdefault("MPLBACKEND", "agg")
    force = flags.split() or ([] if scale == "quick" else list(SKIP_FLAGS))
    t0 = time.perf_counter()
    ok, _ = test_nb(Path(nb_path).resolve(), skip_flags=list(SKIP_FLAGS), force_flags=force,
                    basepath=str(ROOT), save=save)
    print(f"{'ok' if ok else 'FAILED'}: {nb_path} at scale {scale} in {time.perf_counter() - t0:.1f} s")
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("audit"); a.add_argument("paths", nargs="*")
    r = sub.add_parser("run"); r.add_argument("nb")
    r.add_argument("--scale", default=os.environ.get("PHYSML_SCALE", "quick"), choices=["quick", "full"])
    r.add_argument("--save", action="store_true")
    r.add_argument("--flags", default=os.environ.get("NBDEV_FLAGS", ""))
    args = ap.parse_args(argv)
    if args.cmd == "audit":
        problems = [p for nb in notebooks(args.paths) for p in audit(nb)]
        print("\n".join(problems) or "all notebooks run every cell")
        return 1 if problems else 0
    return 0 if run(Path(args.nb), args.scale, args.save, args.flags) else 1


if __name__ == "__main__":
    sys.exit(main())
