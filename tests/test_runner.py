"""The notebook runner itself: it must catch every way a notebook can pass without running."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import nbrun  # noqa: E402
import py2nb  # noqa: E402


def _nb(tmp_path, text, name="nb.ipynb"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(py2nb.to_notebook(py2nb.parse(text))))
    return path


@pytest.mark.parametrize("text, expected", [
    ("%% raw\n---\nskip_exec: true\n---\n%% code\nx = 1", "skip_exec"),
    ("%% code\n#| eval: false\nx = 1", "eval: false"),
    ("%% code\n#| slwo\nx = 1", "unknown directive `#| slwo`"),
    ("%% code\nimport os\nprint(os.getcwd())", "mixes imports"),
])
def test_audit_catches_skips(tmp_path, text, expected):
    problems = nbrun.audit(_nb(tmp_path, text))
    assert len(problems) == 1 and expected in problems[0]


def test_audit_passes_clean_notebook(tmp_path):
    text = ("%% code\n#| export\nimport os\nx = 1\n%% code\n#| slow\nimport math\n"
            "%% code\ndef f():\n    import math\n    return math.pi\n%% code\nassert f() > 3")
    assert nbrun.audit(_nb(tmp_path, text)) == []


def test_audit_catches_error_outputs(tmp_path):
    path = _nb(tmp_path, "%% code\n1/0")
    nb = json.loads(path.read_text())
    nb["cells"][0]["outputs"] = [{"output_type": "error", "ename": "ZeroDivisionError",
                                  "evalue": "", "traceback": []}]
    path.write_text(json.dumps(nb))
    assert "error output" in nbrun.audit(path)[0]


def test_run_fails_on_failing_cell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ok = nbrun.run(_nb(tmp_path, "%% code\nassert 1 == 2"), scale="quick")
    assert ok is False


def test_run_skips_slow_cells_only_when_quick(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran.txt"
    text = f"%% code\n#| slow\nopen({str(marker)!r}, 'w').write('x')"
    assert nbrun.run(_nb(tmp_path, text), scale="quick") and not marker.exists()
    assert nbrun.run(_nb(tmp_path, text), scale="full") and marker.exists()
