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
    ("%% raw\n---\nskip_exec: yes\n---\n%% code\nx = 1", "skip_exec"),
    ("%% raw\n---\n{skip_exec: 'true'}\n---\n%% code\nx = 1", "skip_exec"),
    ("%% md\n# T\n\n> s\n\n- skip_exec: true\n%% code\nx = 1", "skip_exec"),
    ("%% raw\n---\neval: false\n---\n%% code\nx = 1", "nbdev never runs it"),
    ("%% md\n# T\n\n> s\n\n- eval: false\n%% code\nx = 1", "nbdev never runs it"),
    ("%% code\n#| eval: false\nx = 1", "nbdev never runs it"),
    ("%% code\n#|eval:False\nx = 1", "nbdev never runs it"),
    ("%% code\n%%time\n#| eval: false\nx = 1", "nbdev never runs it"),
    ("%% code\nx = 'nbdev_export()'", "nbdev never runs it"),
    ("%% code\n%%writefile out.py\nx = 1", "cell magic `%%writefile`"),
    ("%% code\n#| slwo\nx = 1", "unknown directive `#| slwo`"),
    ("%% code\nimport os\nprint(os.getcwd())", "mixes imports"),
    ("%% code\nimport os\n%% code\n#| slow\nassert os.sep", "every cell that does something is `#| slow`"),
])
def test_audit_catches_skips(tmp_path, text, expected):
    problems = nbrun.audit(_nb(tmp_path, text))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("where, meta", [
    ("notebook", {"nbdev": {"skip_exec": "true"}}),
    ("notebook", {"kernelspec": {"language": "R", "name": "ir", "display_name": "R"}}),
    ("cell", {"tags": ["skip-execution"]}),
    ("cell", {"nbdev": {"eval": "false"}}),
])
def test_audit_catches_metadata_skips(tmp_path, where, meta):
    path = _nb(tmp_path, "%% code\nx = 1")
    nb = json.loads(path.read_text())
    (nb["metadata"] if where == "notebook" else nb["cells"][0]["metadata"]).update(meta)
    path.write_text(json.dumps(nb))
    assert nbrun.audit(path), f"{where} metadata {meta} went unnoticed"


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


def test_notebook_that_exits_early_does_not_pass(tmp_path):
    """A cell calling os._exit(0) ends the process with status 0; the runner's last line is missing."""
    import subprocess
    nb = _nb(tmp_path, "%% code\nimport os\n%% code\nos._exit(0)\n%% code\nassert False")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "nbrun.py"), "run", str(nb)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and f"ok: {nb}" not in r.stdout  # what test_notebooks.py checks


def test_stale_modules_are_found(tmp_path, monkeypatch):
    (tmp_path / "physml_book").mkdir()
    _nb(tmp_path / "nbs", "%% code\n#| default_exp a\n%% code\n#| export\nx = 1", name="a.ipynb")
    (tmp_path / "physml_book" / "a.py").write_text("x = 1\n")
    (tmp_path / "physml_book" / "b.py").write_text("y = 2\n")  # its notebook was deleted
    monkeypatch.setattr(nbrun, "ROOT", tmp_path)
    monkeypatch.setattr(nbrun, "NBS", tmp_path / "nbs")
    assert nbrun.stale_modules() == ["physml_book/b.py"]


def test_saved_progress_bars_keep_their_final_state(tmp_path):
    "Quarto prints every carriage-return update of a progress bar as its own line; a terminal shows the last."
    path = _nb(tmp_path, "%% code\nx = 1")
    nb = json.loads(path.read_text())
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stderr",
                                  "text": ["\r", "bar 0%\r", "bar 50%\r", "bar 100%\n", "done\n"]}]
    path.write_text(json.dumps(nb))
    nbrun.collapse_progress(path)
    assert json.loads(path.read_text())["cells"][0]["outputs"][0]["text"] == ["bar 100%\n", "done\n"]
