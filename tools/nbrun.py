"""Audit and execute the book's notebooks (used by `make test`, `make chapter` and tests/).

    python tools/nbrun.py audit [NB ...]          list what would make a notebook or cell not run
    python tools/nbrun.py stale-modules           library files that no notebook exports
    python tools/nbrun.py run NB [--scale S] [--save]
                                                  execute NB at scale S (quick|full) with nbdev's
                                                  flags; --save writes the outputs back (full runs)

A passing notebook test must mean that every cell ran. `audit` therefore reports every way a
notebook or cell can be skipped or can break the docs build: front matter `skip_exec`,
`eval: false`, directives nbdev and Quarto do not know (a typo such as `#| slwo` would be taken
as a flag), notebooks nbdev would not collect, saved error outputs, and cells that mix imports
with other code (nbdev's doc processing executes such cells outside of their notebook).
`slow` cells are the one allowed skip: they run with `NBDEV_FLAGS=slow` and in `make chapter`.
The skip rules are nbdev's own (`nbdev.test._skip_cell`, front matter, kernel language), so the
audit cannot drift from what `nbdev-test` really does.
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


def _tst_flags() -> tuple[str, ...]:
    "nbdev's skip flags, read from `[tool.nbdev] tst_flags` in pyproject.toml."
    import tomllib
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["nbdev"]
    return tuple(str(cfg.get("tst_flags", "")).split())


SKIP_FLAGS = _tst_flags()  # `slow`: the one flag the book allows

# Notebooks allowed to skip cells, with the reason. Keep it empty unless there is no other way:
# a notebook listed here passes `make test` without running every cell.
ALLOWED_SKIPS: dict[str, str] = {
    # "nbs/<chapter>/<notebook>.ipynb": "why this notebook cannot run every cell in CI",
}
_RUNNABLE_CELL_MAGICS = {"time", "timeit", "capture"}

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
        if not line.strip() or line.lstrip().startswith("%"): continue
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


def _nbdev_view(nb_path: Path):
    "The notebook as nbdev's test runner sees it (directives parsed, front matter merged)."
    from nbdev.process import NBProcessor
    return NBProcessor(nb_path, rm_directives=False, process=True).nb


def audit(nb_path: Path) -> list[str]:
    "Problems that would make `nb_path` skip cells, pass without running, or break the docs build."
    from nbdev.test import _skip_cell, nb_frontmatter, nb_lang
    from fastcore.basics import str2bool
    nb_path = Path(nb_path).resolve()
    rel = nb_path.relative_to(ROOT) if nb_path.is_relative_to(ROOT) else nb_path
    problems = []
    rel_nbs = nb_path.relative_to(NBS) if nb_path.is_relative_to(NBS) else nb_path
    if any(part.startswith(("_", ".")) for part in rel_nbs.parts[:-1]):
        problems.append("lives in a folder starting with '_' or '.', which nbdev-test skips")
    for folder in nb_path.parents:
        if (folder / ".notest").exists(): problems.append(f"{folder} holds a .notest file")
        if folder == NBS: break

    # nbdev's own rules: what would `nbdev-test` skip with no flags at all?
    nb = _nbdev_view(nb_path)
    fm = nb_frontmatter(nb)
    if str2bool(fm.get("skip_exec", False)):
        problems.append("front matter `skip_exec` skips the whole notebook")
    if nb_lang(nb) != "python":
        problems.append(f"kernel language {nb_lang(nb)!r} is not 'python': nbdev-test skips the notebook")
    never = _skip_cell(nb, skip_flags=[], force_flags=[])
    slow = _skip_cell(nb, skip_flags=list(SKIP_FLAGS), force_flags=[])
    code = [c for c in nb.cells if c.cell_type == "code"]
    for c in code:
        if never(c): problems.append(f"cell {c.idx_}: nbdev never runs it (an `eval: false` directive, "
                                     "front matter or metadata, a `skip-execution` tag, or nbdev_export())")
    substantive = [c for c in code if not slow(c) and not _inert(c.source)]
    if any(slow(c) for c in code) and not substantive:
        problems.append("every cell that does something is `#| slow`: at quick scale the notebook runs nothing")

    # The book's own rules: known directives only, runnable cell magics, imports in cells of their own.
    raw = json.loads(nb_path.read_text())
    for i, cell in enumerate(raw["cells"]):
        if cell["cell_type"] != "code": continue
        src = "".join(cell.get("source", []))
        dirs = _directives(src)
        for name, value in dirs:
            if name not in KNOWN:
                problems.append(f"cell {i}: unknown directive `#| {name}`")
        magic = next((l.strip() for l in src.splitlines() if l.strip().startswith("%%")), None)
        if magic and magic[2:].split()[0] not in _RUNNABLE_CELL_MAGICS:
            problems.append(f"cell {i}: cell magic `{magic.split()[0]}` does not run the cell as Python")
        names = {n for n, _ in dirs}
        if not names & {"export", "exports", "exporti", "export_", "exec_doc"} and _mixes_imports(src):
            problems.append(f"cell {i}: mixes imports with other code (nbdev's doc processing "
                            "runs every cell that imports); put the imports in a cell of their own")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: saved with an error output ({out.get('ename')})")
    return [f"{rel}: {p}" for p in problems]


def _inert(src: str) -> bool:
    "True for cells that only import, define or export (they do nothing observable at run time)."
    code = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!", "#")))
    try: tree = ast.parse(code)
    except SyntaxError: return False
    inert = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return all(isinstance(n, inert) for n in tree.body)


def problems(nb_path: Path) -> list[str]:
    "`audit(nb_path)`, unless the notebook is on the commented allow-list `ALLOWED_SKIPS`."
    rel = str(Path(nb_path).resolve().relative_to(ROOT))
    return [] if rel in ALLOWED_SKIPS else audit(nb_path)


def stale_modules() -> list[str]:
    "Library files no notebook exports (left behind by a deleted notebook, or written by hand)."
    exported = set()
    for nb in notebooks():
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] != "code": continue
            for name, value in _directives("".join(cell.get("source", []))):
                if name == "default_exp": exported.add(value.split()[0])
    lib = ROOT / "physml_book"
    found = []
    for py in sorted(lib.rglob("*.py")):
        if py.name in ("__init__.py", "_modidx.py") or "__pycache__" in py.parts: continue
        mod = ".".join(py.relative_to(lib).with_suffix("").parts)
        if mod not in exported: found.append(str(py.relative_to(ROOT)))
    return found


def run(nb_path: Path, scale: str = "quick", save: bool = False, flags: str = "") -> bool:
    "Execute `nb_path` with nbdev's test runner at `scale`; `save` writes outputs back."
    from nbdev.test import test_nb
    os.environ["PHYSML_SCALE"] = scale
    os.environ.setdefault("MPLBACKEND", "agg")
    force = flags.split() or ([] if scale == "quick" else list(SKIP_FLAGS))
    t0 = time.perf_counter()
    ok, _ = test_nb(Path(nb_path).resolve(), skip_flags=list(SKIP_FLAGS), force_flags=force,
                    basepath=str(ROOT), save=save,
                    cell_timeout=600 if scale == "quick" else None)  # full runs may take long
    if save:
        collapse_progress(Path(nb_path))
    print(f"{'ok' if ok else 'FAILED'}: {nb_path} at scale {scale} in {time.perf_counter() - t0:.1f} s")
    return ok


def collapse_progress(nb_path: Path) -> None:
    "Keep what a terminal would show of progress bars: the text after the last carriage return of each line."
    nb = json.loads(nb_path.read_text())
    changed = False
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", [])) if out.get("output_type") == "stream" else ""
            if "\r" in text:
                lines = [ln.rstrip("\r").rsplit("\r", 1)[-1] for ln in text.split("\n")]
                out["text"] = [ln + "\n" for ln in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
                changed = True
    if changed:
        nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("audit"); a.add_argument("paths", nargs="*")
    sub.add_parser("stale-modules")
    r = sub.add_parser("run"); r.add_argument("nb")
    r.add_argument("--scale", default=os.environ.get("PHYSML_SCALE", "quick"), choices=["quick", "full"])
    r.add_argument("--save", action="store_true")
    r.add_argument("--flags", default=os.environ.get("NBDEV_FLAGS", ""))
    args = ap.parse_args(argv)
    if args.cmd == "audit":
        found = [p for nb in notebooks(args.paths) for p in problems(nb)]
        print("\n".join(found) or "all notebooks run every cell")
        return 1 if found else 0
    if args.cmd == "stale-modules":
        stale = stale_modules()
        for s in stale: print(f"{s} is exported by no notebook: delete it, or restore its notebook")
        return 1 if stale else 0
    return 0 if run(Path(args.nb), args.scale, args.save, args.flags) else 1


if __name__ == "__main__":
    sys.exit(main())
