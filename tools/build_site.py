"""Render the book's website into _docs/ and check it.

    python tools/build_site.py [--no-check] [--screenshots] [--require-screenshots]

Rendering: with Quarto (`nbdev-docs`) when `quarto` is on PATH; otherwise offline with
smalldocs, on the notebooks processed by nbdev (`nbdev.serve.proc_nbs`, which unlike
`nbdev-proc-nbs` does not try to install Quarto).

Checks: `smalldocs check` (no broken links, nothing it cannot read), every sidebar entry is a
notebook of the book and every notebook is in the sidebar, no YAML file became a page.
Screenshots: headless Chromium (Debian's `chromium`, installed with apt-get when missing) of the
front page, a core page and the first chapter page, into _screenshots/.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import nbrun  # noqa: E402  (one definition of "the book's notebooks")
NBS, PROC, DOCS, SHOTS = ROOT / "nbs", ROOT / "_proc", ROOT / "_docs", ROOT / "_screenshots"
BIN = Path(sys.executable).parent


def sh(*cmd, **kw):
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.run(list(map(str, cmd)), check=True, **kw)


def sidebar_pages() -> list[str]:
    "The pages the sidebar of nbs/_quarto.yml lists, in order."
    cfg = yaml.safe_load((NBS / "_quarto.yml").read_text())
    out = []
    def walk(items):
        for it in items:
            if isinstance(it, str): out.append(it)
            elif isinstance(it, dict) and "contents" in it: walk(it["contents"])
            elif isinstance(it, dict) and "href" in it: out.append(it["href"])
    walk(cfg["website"]["sidebar"]["contents"])
    return out


def _strip_output_file(proc: Path):
    "smalldocs names pages after their files; nbdev's `output-file:` key would only raise a warning."
    for nb_path in proc.rglob("*.ipynb"):
        nb = json.loads(nb_path.read_text())
        for cell in nb["cells"][:1]:
            if cell["cell_type"] == "raw":
                cell["source"] = [l for l in cell["source"] if not l.startswith("output-file:")]
        nb_path.write_text(json.dumps(nb, indent=1))


def render():
    if shutil.which("quarto", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"):
        sh(BIN / "nbdev-docs", cwd=ROOT)
        return
    from nbdev.serve import proc_nbs
    proc_nbs()
    _strip_output_file(PROC)
    if (PROC / "_docs").exists(): shutil.rmtree(PROC / "_docs")
    sh(BIN / "smalldocs", "render", PROC)
    if DOCS.exists(): shutil.rmtree(DOCS)
    shutil.move(str(PROC / "_docs"), DOCS)
    localise_links()
    vendor_katex()


KATEX_VERSION = "0.16.11"  # the version smalldocs links from its CDN
KATEX_CDN = f"https://cdn.jsdelivr.net/npm/katex@{KATEX_VERSION}/dist"


def vendor_katex() -> bool:
    """Serve KaTeX from _docs/ so that maths renders offline too (npm registry, cached in .venv).

    smalldocs links KaTeX from a CDN; without internet, the page shows raw TeX. Where npm is
    available, the same KaTeX release is unpacked next to the pages and the links rewritten."""
    cache = ROOT / ".venv" / f"katex-{KATEX_VERSION}"
    if not (cache / "katex.min.js").exists():
        if not shutil.which("npm"):
            print("npm not found: maths will render from the KaTeX CDN only", flush=True)
            return False
        tmp = ROOT / ".venv" / "katex-pack"
        shutil.rmtree(tmp, ignore_errors=True); tmp.mkdir(parents=True)
        try:
            subprocess.run(["npm", "pack", f"katex@{KATEX_VERSION}", "--silent"], cwd=tmp, check=True,
                           capture_output=True, timeout=300)
            import tarfile
            with tarfile.open(next(tmp.glob("katex-*.tgz"))) as tar:
                tar.extractall(tmp, filter="data")
            shutil.rmtree(cache, ignore_errors=True)
            shutil.move(str(tmp / "package" / "dist"), cache)
        except (subprocess.SubprocessError, StopIteration, OSError) as e:
            print(f"could not fetch KaTeX with npm ({e}): maths will render from the CDN only", flush=True)
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    dest = DOCS / "site_libs" / "katex"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(cache, dest)
    for html in DOCS.rglob("*.html"):
        text = html.read_text()
        if KATEX_CDN in text:
            rel = Path(*([".."] * (len(html.relative_to(DOCS).parts) - 1)), "site_libs", "katex")
            html.write_text(text.replace(KATEX_CDN, rel.as_posix()))
    return True


def localise_links():
    """Point the API cross-links nbdev writes as absolute `doc_url` addresses at the local pages.

    nbdev links symbols to `<Documentation URL>/<page>.html`; a book read from _docs/ (offline,
    or before it is published) needs relative links, and `check` can then verify them."""
    import tomllib
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    base = urls.get("Documentation", "").rstrip("/")
    if not base: return
    for html in DOCS.rglob("*.html"):
        text = html.read_text()
        if base + "/" in text:
            up = "../" * (len(html.relative_to(DOCS).parts) - 1)
            html.write_text(text.replace(base + "/", up or "./"))


def broken_local_links() -> list[str]:
    "Relative `href`s in _docs/ that point at files which do not exist."
    import re
    bad = []
    for html in DOCS.rglob("*.html"):
        for href in re.findall(r'href="([^"#?]+)', html.read_text()):
            if "://" in href or href.startswith(("mailto:", "data:", "javascript:")): continue
            target = (html.parent / href).resolve()
            if not target.exists():
                bad.append(f"{html.relative_to(DOCS)} links to a missing {href}")
    return sorted(set(bad))


def check() -> list[str]:
    problems = []
    pages = sidebar_pages()
    nbs = {str(p.relative_to(NBS.resolve())) for p in nbrun.notebooks()}
    problems += [f"sidebar lists {p}, which is not a notebook of the book" for p in pages if p not in nbs]
    problems += [f"{p} is not in the sidebar of nbs/_quarto.yml" for p in sorted(nbs - set(pages))]
    problems += [f"a YAML file became a page: {p}" for p in pages if p.endswith((".yml", ".yaml"))]
    for p in pages:
        html = DOCS / Path(p).with_suffix(".html")
        if not html.exists(): problems.append(f"{p} was not rendered to {html.relative_to(ROOT)}")
    problems += broken_local_links()
    if (PROC / "_quarto.yml").exists():
        r = subprocess.run([str(BIN / "smalldocs"), "check", str(PROC)], capture_output=True, text=True)
        if r.returncode: problems.append("smalldocs check:\n" + r.stdout + r.stderr)
    return problems


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name): return shutil.which(name)
    print("Chromium is missing: installing Debian's chromium package", flush=True)
    apt = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    sudo = [] if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0" else ["sudo", "-n"]
    try:
        subprocess.run(sudo + ["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(sudo + apt, check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        print(f"could not install chromium ({e})", flush=True)
        return None
    return shutil.which("chromium")


def screenshots(require: bool) -> list[Path]:
    exe = chromium()
    if exe is None:
        if require: raise SystemExit("screenshots were required but Chromium is not available")
        print("skipping screenshots: no Chromium", flush=True)
        return []
    pages = sidebar_pages()
    picks = [pages[0]] + [next((p for p in pages if p.startswith(pre)), None) for pre in ("core/plot", "core/")]
    picks += [next((p for p in pages if not p.startswith("core/") and "/" in p), None)]
    SHOTS.mkdir(exist_ok=True)
    out = []
    for page in dict.fromkeys(p for p in picks if p):
        html = DOCS / Path(page).with_suffix(".html")
        png = SHOTS / (str(Path(page).with_suffix("")).replace("/", "__") + ".png")
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", f"--user-data-dir={SHOTS / '.profile'}", "--window-size=1280,1600",
                 f"--screenshot={png}", html.as_uri()]
        subprocess.run([exe, *flags], check=True, capture_output=True, timeout=120)
        print(f"screenshot: {png.relative_to(ROOT)}", flush=True)
        out.append(png)
    shutil.rmtree(SHOTS / ".profile", ignore_errors=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="render and check the website")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--screenshots", action="store_true")
    ap.add_argument("--require-screenshots", action="store_true")
    args = ap.parse_args(argv)
    render()
    if not args.no_check:
        problems = check()
        if problems:
            print("website check failed:\n- " + "\n- ".join(problems), file=sys.stderr)
            return 1
        print("website check: sidebar, pages and links are fine")
    if args.screenshots or args.require_screenshots:
        screenshots(args.require_screenshots)
    print(f"the book is in {DOCS.relative_to(ROOT)}/: open {(DOCS / 'index.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
