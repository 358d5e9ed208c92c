"""Every notebook of the book is one pytest test, run at quick scale in its own process.

A pass must mean that every cell ran, so each notebook is first audited (tools/nbrun.py): a
notebook or cell that nbdev would skip (front matter, `eval: false`, unknown flags), or that
would break the docs build, fails its test unless it is on `ALLOWED_SKIPS` in tools/nbrun.py.
`slow` cells are the one allowed skip; run them with NBDEV_FLAGS=slow.

Each notebook runs in a fresh Python process, as under `nbdev-test`, so no notebook can pass
because another one switched JAX to float64 or left a module imported.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import nbrun  # noqa: E402

NOTEBOOKS = nbrun.notebooks()


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT / "nbs"))


def test_notebooks_were_found():
    assert len(NOTEBOOKS) >= 9, f"expected the front page and the core notebooks, found {NOTEBOOKS}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=_id)
def test_notebook(nb: Path):
    rel = str(nb.relative_to(ROOT))
    problems = nbrun.problems(nb)  # empty for notebooks on nbrun.ALLOWED_SKIPS
    if problems:
        pytest.fail("notebook would not run every cell:\n" + "\n".join(problems))
    env = {**os.environ, "PHYSML_SCALE": "quick", "MPLBACKEND": "agg"}
    flags = os.environ.get("NBDEV_FLAGS", "")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "nbrun.py"), "run", str(nb),
                        "--scale", "quick", "--flags", flags],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0 or f"ok: {nb}" not in r.stdout:  # the runner must reach its last line
        pytest.fail(f"{rel} failed at quick scale:\n{r.stderr[-6000:]}\n{r.stdout[-2000:]}")
