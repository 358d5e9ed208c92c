"""The website renders, passes `smalldocs check`, and screenshots can be taken (slow: -m slow)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_website_renders_and_checks():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), "--require-screenshots"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (ROOT / "_docs" / "index.html").exists()
    assert (ROOT / "_screenshots" / "index.png").stat().st_size > 10_000
