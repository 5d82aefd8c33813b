#!/usr/bin/env python3
"""Build the course's website from the notebooks as they are stored: outputs, figures and all, never re-executed.

    .venv/bin/python tools/build_site.py              # -> build/site/html/index.html (git-ignored)
    .venv/bin/python tools/build_site.py --out DIR    # -> DIR/html/index.html

The README is the front page, the syllabus is the navigation (one group per week, as the README's syllabus table
assigns the notebooks; a notebook the table does not list yet goes under "More lessons", so every notebook in
``notebooks/`` has a page), CONTRIBUTING.md closes it. Jupyter Book 1 (Sphinx with MyST-NB) builds it with
execution off; everything it needs is in the wheels ``requirements-dev.txt`` installs, so the build makes no
network request, and neither does a page when it is viewed: maths is typeset by a copy of MathJax 3 served from the
site's own ``_static/mathjax/`` (taken from the ``django-static-mathjax`` wheel), the widget manager Jupyter Book
would load from a CDN is switched off (the stored progress bars are not drawn), and the Colab badge is a local
picture.

The book's source is staged in ``OUT/source`` (the notebooks are copied there, never changed in place): a worked
solution (cell metadata ``{"jupyter": {"source_hidden": true}, "tags": ["solution"]}``) gets MyST-NB's
``hide-input`` tag, so that it stays collapsed behind "Show the solution" as it does in JupyterLab.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "build" / "site"
TITLE = "Image segmentation, hands-on"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "colab-badge.svg"
SOLUTION_PROMPTS = {"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
MORE_LESSONS = "More lessons"
WARNINGS = "warnings.txt"
SITE_STATIC = "site_static"  # copied into the site's _static/
# what of MathJax's es5 folder the site serves: the TeX-to-HTML component, the TeX extensions it loads on demand,
# its fonts, and the menu's accessibility tools (the other combined components and the SVG output are left out)
MATHJAX_PARTS = ("tex-chtml.js", "input/tex", "output/chtml", "ui", "a11y", "sre", "adaptors")

_SYLLABUS_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*\[[^\]]*\]\(notebooks/([^)/]+)\.ipynb\)", re.M)
_REPOSITORY = re.compile(r'^\[tool\.course\]\s*$(?:\n(?!\[).*)*?\nrepository\s*=\s*"([^"]+)"', re.M)

ANCHORS_MODULE = "course_site_anchors"
ANCHORS_SOURCE = '''"""Headings get JupyterLab's anchors on the course's site: a link between lessons works in both."""


def jupyterlab_anchor(text):
    """JupyterLab's id of a heading: its text, each space a hyphen ("3. IoU and Dice" -> "3.-IoU-and-Dice")."""
    return text.strip().replace(" ", "-")


def setup(app):
    return {"parallel_read_safe": True, "parallel_write_safe": True}
'''

BADGE_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="117" height="20" role="img" aria-label="Open in Colab">
<title>Open in Colab</title>
<rect width="117" height="20" rx="3" fill="#555"/>
<rect x="38" width="79" height="20" rx="3" fill="#f9ab00"/>
<rect x="38" width="6" height="20" fill="#f9ab00"/>
<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">
<text x="6" y="14">Open</text><text x="44" y="14" fill="#333">in Colab</text>
</g>
</svg>
"""


def lessons(root: Path = ROOT) -> list[Path]:
    """Every notebook of ``root/notebooks``, in name order."""
    return sorted((root / "notebooks").glob("*.ipynb"))


def syllabus_weeks(readme: str) -> dict[str, int]:
    """``{notebook stem: week}`` from the README's syllabus table (rows ``| 2 | [04 FCN](notebooks/04_x.ipynb) |``)."""
    return {stem: int(week) for week, stem in _SYLLABUS_ROW.findall(readme)}


def repository(root: Path = ROOT) -> str:
    """``OWNER/NAME`` of the course's GitHub repository (``[tool.course]`` in ``pyproject.toml``)."""
    match = _REPOSITORY.search((root / "pyproject.toml").read_text())
    if not match:
        raise SystemExit("pyproject.toml has no [tool.course] repository = \"OWNER/NAME\"")
    return match.group(1)


def is_solution(cell: dict) -> bool:
    """Whether a cell is a worked solution (tagged ``solution`` or with its source hidden in JupyterLab)."""
    meta = cell.get("metadata", {})
    return "solution" in meta.get("tags", []) or bool(meta.get("jupyter", {}).get("source_hidden"))


def stage_notebook(notebook: dict) -> dict:
    """A copy of ``notebook`` (parsed JSON) as the site shows it.

    Solutions get the ``hide-input`` tag and their own prompt; the Colab badge points at the local picture; the
    stored widget state (progress bars, which need a widget manager from a CDN to draw) is dropped.
    """
    nb = copy.deepcopy(notebook)
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and is_solution(cell):
            meta = cell.setdefault("metadata", {})
            tags = meta.setdefault("tags", [])
            if "hide-input" not in tags:
                tags.append("hide-input")
            meta.setdefault("mystnb", {}).update(SOLUTION_PROMPTS)
        elif cell["cell_type"] == "markdown":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = source.replace(COLAB_BADGE, LOCAL_BADGE)
    return nb


def toc_yaml(stems: list[str], weeks: dict[str, int]) -> str:
    """Jupyter Book's ``_toc.yml``: the README, one part per week, then CONTRIBUTING."""
    groups: dict[str, list[str]] = {}
    for stem in sorted(stems, key=lambda s: (weeks.get(s, 10 ** 6), s)):
        caption = f"Week {weeks[stem]}" if stem in weeks else MORE_LESSONS
        groups.setdefault(caption, []).append(stem)
    lines = ["format: jb-book", "root: index", "parts:"]
    for caption, members in groups.items():
        lines += [f'  - caption: "{caption}"', "    chapters:"]
        lines += [f"      - file: notebooks/{stem}" for stem in members]
    lines += ['  - caption: "Contributing"', "    chapters:", "      - file: CONTRIBUTING"]
    return "\n".join(lines) + "\n"


def config_yaml(repo: str) -> str:
    """Jupyter Book's ``_config.yml`` (JSON is YAML): stored outputs only, nothing fetched by a page."""
    config = {
        "title": TITLE,
        "author": "the course's contributors",
        "copyright": "",
        "only_build_toc_files": True,
        "exclude_patterns": ["_build", "_ext", "**.ipynb_checkpoints"],
        "execute": {"execute_notebooks": "off"},
        "parse": {"myst_enable_extensions": ["dollarmath", "amsmath", "colon_fence", "linkify"]},
        "html": {"use_repository_button": True, "home_page_in_navbar": True, "use_multitoc_numbering": False},
        "launch_buttons": {"colab_url": "https://colab.research.google.com", "notebook_interface": "jupyterlab"},
        "repository": {"url": f"https://github.com/{repo}", "branch": "main", "path_to_book": ""},
        "sphinx": {
            "local_extensions": {ANCHORS_MODULE: "_ext"},
            "config": {
                "mathjax_path": "mathjax/tex-chtml.js",  # served from _static/, see copy_mathjax
                # its own static folder: Jupyter Book would add every .js file of the book's _static/ to every page
                "html_static_path": [SITE_STATIC],
                "nb_ipywidgets_js": {},                   # no widget manager from a CDN
                "nb_merge_streams": True,
                # a heading's anchor is JupyterLab's ("3.-IoU-and-Dice"), so links between lessons work in both
                "myst_heading_anchors": 4,
                "myst_heading_slug_func": f"{ANCHORS_MODULE}.jupyterlab_anchor",
                "html_show_copyright": False,
                "html_show_sphinx": False,
                "suppress_warnings": ["mystnb.unknown_mime_type"],
            }
        },
    }
    return json.dumps(config, indent=2) + "\n"


def mathjax_folder() -> Path:
    """MathJax 3's ``es5`` folder as the ``django-static-mathjax`` wheel installs it."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    hint = ("install the course's tools with `python3 course.py setup` "
            "(requirements-dev.txt names django-static-mathjax)")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"MathJax is not installed: {hint}")
    es5 = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise SystemExit(f"MathJax's tex-chtml.js is not in {es5}: {hint}")
    return es5


def copy_mathjax(static: Path) -> Path:
    """Copy the parts of MathJax the site uses to ``static/mathjax``; returns that folder."""
    es5 = mathjax_folder()
    dest = static / "mathjax"
    for part in MATHJAX_PARTS:
        src = es5 / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        elif src.is_file():
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)
    return dest


def stage(source: Path, root: Path = ROOT) -> list[str]:
    """Lay out the book's source in ``source`` (emptied first); returns the notebooks' stems."""
    if source.exists():
        shutil.rmtree(source)
    (source / "notebooks").mkdir(parents=True)
    readme = (root / "README.md").read_text(encoding="utf-8")
    shutil.copy2(root / "README.md", source / "index.md")  # the front page
    shutil.copy2(root / "CONTRIBUTING.md", source / "CONTRIBUTING.md")
    stems = []
    for path in lessons(root):
        nb = json.loads(path.read_text(encoding="utf-8"))
        (source / "notebooks" / path.name).write_text(json.dumps(stage_notebook(nb), indent=1), encoding="utf-8")
        stems.append(path.stem)
    (source / "notebooks" / LOCAL_BADGE).write_text(BADGE_SVG, encoding="utf-8")
    (source / "_ext").mkdir()
    (source / "_ext" / f"{ANCHORS_MODULE}.py").write_text(ANCHORS_SOURCE, encoding="utf-8")
    (source / "_toc.yml").write_text(toc_yaml(stems, syllabus_weeks(readme)), encoding="utf-8")
    (source / "_config.yml").write_text(config_yaml(repository(root)), encoding="utf-8")
    copy_mathjax(source / SITE_STATIC)
    return stems


def build(out: Path = DEFAULT_OUT, root: Path = ROOT, quiet: bool = True) -> Path:
    """Stage and build the site into ``out/html``; returns the front page, ``out/html/index.html``.

    Sphinx's warnings (a link to a missing page or section, say) are printed and kept in ``out/warnings.txt``.

    Raises
    ------
    RuntimeError
        If Jupyter Book fails (its output is in the message).
    """
    out = Path(out).resolve()
    source = out / "source"
    stage(source, root)
    html = out / "html"
    if html.exists():
        shutil.rmtree(html)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book) if jupyter_book.exists() else "jupyter-book", "build", str(source),
           "--path-output", str(out / "jb"), "--builder", "html"]
    if quiet:
        cmd.append("--quiet")
    run = subprocess.run(cmd, cwd=out, stdout=subprocess.PIPE if quiet else None, stderr=subprocess.PIPE, text=True,
                         check=False)
    sys.stderr.write(run.stderr)
    if run.returncode != 0:
        raise RuntimeError(f"jupyter-book failed (exit {run.returncode}):\n{run.stdout or ''}{run.stderr}")
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line]
    (out / WARNINGS).write_text("".join(f"{line}\n" for line in warnings), encoding="utf-8")
    shutil.move(str(out / "jb" / "_build" / "html"), html)
    shutil.rmtree(out / "jb", ignore_errors=True)
    return html / "index.html"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--verbose", action="store_true", help="show Jupyter Book's own output")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    index = build(args.out, quiet=not args.verbose)
    n_warnings = len((args.out / WARNINGS).read_text(encoding="utf-8").splitlines())
    print(f"site built in {time.perf_counter() - start:.0f} s, {n_warnings} warning(s): {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
