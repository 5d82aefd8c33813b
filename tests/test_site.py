"""The course's website (tools/build_site.py): built offline from the stored outputs, one page per notebook, every
stored figure on its page, solutions collapsed, maths by the site's own MathJax, nothing fetched from elsewhere."""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from tool_loader import load_tool

site_tool = load_tool("build_site")
ROOT = site_tool.ROOT
NOTEBOOKS = site_tool.lessons()
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
# every attribute through which a page makes the browser fetch something by itself
FETCHING = {"script": ("src",), "link": ("href",), "img": ("src", "srcset"), "iframe": ("src",), "source": ("src",),
            "audio": ("src",), "video": ("src", "poster"), "embed": ("src",), "object": ("data",)}
# <link rel=...> values that are navigation for the reader, not something the page loads
NAVIGATION_RELS = {"index", "search", "next", "prev", "canonical", "author", "license", "help", "top", "up",
                   "alternate"}


def build_site_once(tmp_path_factory) -> Path:
    """Build the site once per test session (test_browser.py shares it); returns its ``html`` folder."""
    out = tmp_path_factory.getbasetemp() / "course-site"
    done = out / "built"
    if not done.exists():
        site_tool.build(out)
        done.write_text("ok")
    return out / "html"


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    pytest.importorskip("jupyter_book", reason="install the course's tools: python3 course.py setup")
    return build_site_once(tmp_path_factory)


@functools.cache
def _soup(path: Path):
    """A page, parsed once (read-only: callers must not change it)."""
    from bs4 import BeautifulSoup

    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _page(html: Path, notebook: Path) -> Path:
    return html / "notebooks" / f"{notebook.stem}.html"


def _cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text(encoding="utf-8"))["cells"]


def _title(notebook: Path) -> str:
    """The notebook's first level-1 heading, as text (markdown emphasis and code marks dropped)."""
    for cell in _cells(notebook):
        if cell["cell_type"] == "markdown":
            match = re.search(r"^# (.+)$", "".join(cell["source"]), re.M)
            if match:
                return re.sub(r"[*_`]", "", match.group(1)).strip()
    raise AssertionError(f"{notebook.name} has no title heading")


# ----------------------------------------------------------------------------------------------
# the staging helpers, without a build


def test_the_syllabus_table_gives_each_listed_notebook_its_week():
    weeks = site_tool.syllabus_weeks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert weeks["00_welcome"] == 0
    assert weeks["04b_unet_real_nuclei"] == 2
    assert set(weeks) <= {nb.stem for nb in NOTEBOOKS}, "the README's syllabus links only notebooks that exist"


def test_navigation_has_a_part_per_week_and_keeps_notebooks_the_syllabus_does_not_list_yet():
    toc = site_tool.toc_yaml(["01_a", "00_b", "02_c", "11_new", "12_newer"], {"00_b": 0, "01_a": 1, "02_c": 1})
    assert toc == (
        "format: jb-book\nroot: index\nparts:\n"
        '  - caption: "Week 0"\n    chapters:\n      - file: notebooks/00_b\n'
        '  - caption: "Week 1"\n    chapters:\n      - file: notebooks/01_a\n      - file: notebooks/02_c\n'
        '  - caption: "More lessons"\n    chapters:\n      - file: notebooks/11_new\n      - file: notebooks/12_newer\n'
        '  - caption: "Contributing"\n    chapters:\n      - file: CONTRIBUTING\n')


def test_staging_hides_solutions_points_the_badge_at_a_local_picture_and_leaves_the_original_alone():
    notebook = {
        "metadata": {"widgets": {"state": {}}},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": [f"[![Open In Colab]({site_tool.COLAB_BADGE})](x)\n"]},
            {"cell_type": "code", "metadata": {}, "source": "answer = None", "outputs": []},
            {"cell_type": "code", "metadata": {"jupyter": {"source_hidden": True}, "tags": ["solution"]},
             "source": "# Solution (expand to read)", "outputs": []},
        ],
    }
    original = json.dumps(notebook)
    staged = site_tool.stage_notebook(notebook)
    assert json.dumps(notebook) == original
    assert staged["cells"][0]["source"] == "[![Open In Colab](colab-badge.svg)](x)\n"
    assert "tags" not in staged["cells"][1]["metadata"]
    assert staged["cells"][2]["metadata"]["tags"] == ["solution", "hide-input"]
    assert staged["cells"][2]["metadata"]["mystnb"] == site_tool.SOLUTION_PROMPTS
    assert "widgets" not in staged["metadata"]


@pytest.mark.parametrize("heading, anchor", [
    ("3. IoU and Dice: the same ranking per class, different means",
     "3.-IoU-and-Dice:-the-same-ranking-per-class,-different-means"),
    ("Summary", "Summary"),
])
def test_headings_get_jupyterlabs_anchors(heading, anchor):
    module = {}
    exec(site_tool.ANCHORS_SOURCE, module)
    assert module["jupyterlab_anchor"](heading) == anchor


def test_every_notebook_links_the_badge_this_build_replaces():
    for notebook in NOTEBOOKS:
        assert site_tool.COLAB_BADGE in "".join(_cells(notebook)[0]["source"]), notebook.name


# ----------------------------------------------------------------------------------------------
# the built site


def test_the_front_page_is_the_readme_and_the_navigation_lists_every_notebook(html):
    front = _soup(html / "index.html")
    assert front.find("h1").get_text(" ", strip=True).startswith("Image segmentation, hands-on")
    assert front.find(id="syllabus") is not None, "the README's syllabus section is on the front page"
    nav = front.select_one("nav.bd-docs-nav")
    linked = {a["href"] for a in nav.find_all("a", href=True)}
    for notebook in NOTEBOOKS:
        assert f"notebooks/{notebook.stem}.html" in linked, f"{notebook.name} is not in the navigation"
    captions = [c.get_text(strip=True) for c in nav.select("p.caption")]
    assert captions[0] == "Week 0" and captions[-1] == "Contributing"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_every_notebook_has_a_page_with_its_title(html, notebook):
    page = _page(html, notebook)
    assert page.is_file(), f"no page for {notebook.name}"
    h1 = _soup(page).find("h1").get_text(" ", strip=True).replace("#", "").strip()
    assert h1 == _title(notebook)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_every_stored_figure_appears_on_its_page(html, notebook):
    """Each image a cell's outputs store is, byte for byte, a picture its page shows."""
    stored = []
    for cell in _cells(notebook):
        for output in cell.get("outputs", []):
            for mime in IMAGE_TYPES:
                if mime in output.get("data", {}):
                    data = output["data"][mime]
                    data = "".join(data) if isinstance(data, list) else data
                    raw = data.encode() if mime == "image/svg+xml" else base64.b64decode(data)
                    stored.append(hashlib.sha256(raw).hexdigest())
    page = _page(html, notebook)
    shown = set()
    for img in _soup(page).find_all("img", src=True):
        src = unquote(urlsplit(img["src"]).path)
        if img["src"].startswith("data:") or not src:
            continue
        shown.add(hashlib.sha256((page.parent / src).resolve().read_bytes()).hexdigest())
    missing = [i for i, digest in enumerate(stored) if digest not in shown]
    assert not missing, f"{notebook.name}: stored figures {missing} (of {len(stored)}) are not on its page"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_solutions_stay_collapsed(html, notebook):
    """Each worked solution's code sits in a closed <details>, behind "Show the solution", as in JupyterLab."""
    n_solutions = sum(site_tool.is_solution(c) for c in _cells(notebook) if c["cell_type"] == "code")
    hidden = [d for d in _soup(_page(html, notebook)).select("details.hide.above-input")]
    assert len(hidden) == n_solutions
    for details in hidden:
        assert not details.has_attr("open")
        assert details.find("summary").get_text(" ", strip=True).startswith("Show the solution")
        assert "# Solution" in details.select_one("div.cell_input").get_text()


def _external_fetches(page: Path) -> list[str]:
    found = []
    soup = _soup(page)
    for tag, attributes in FETCHING.items():
        for element in soup.find_all(tag):
            if tag == "link" and NAVIGATION_RELS.issuperset(element.get("rel") or []):
                continue
            for attribute in attributes:
                value = (element.get(attribute) or "").strip()
                if re.match(r"(https?:)?//", value, re.I):
                    found.append(f"<{tag} {attribute}={value!r}>")
    return found


def test_no_page_fetches_a_script_stylesheet_or_picture_from_elsewhere(html):
    pages = sorted(html.rglob("*.html"))
    assert len(pages) >= len(NOTEBOOKS) + 2
    problems = {p.relative_to(html).as_posix(): f for p in pages if (f := _external_fetches(p))}
    assert not problems, f"pages that would fetch from the internet: {problems}"
    for css in html.rglob("*.css"):
        text = css.read_text("utf-8", "ignore")
        external = re.findall(r"(?:@import\s+|url\(\s*)[\"']?((?:https?:)?//[^\"')\s]+)", text)
        assert not external, f"{css.relative_to(html)} loads {external}"


def test_links_between_lessons_and_to_their_sections_resolve(html):
    """A link to a lesson or to a section of one (JupyterLab's anchors, "#3.-IoU-and-Dice") finds its target."""
    warnings = (html.parent / site_tool.WARNINGS).read_text(encoding="utf-8").splitlines()
    broken = [w for w in warnings if "xref_missing" in w or "local id not found" in w or "not found" in w]
    assert not broken, "\n".join(broken)


def test_maths_is_typeset_by_the_mathjax_the_site_serves(html):
    pages_with_maths = [p for p in sorted((html / "notebooks").glob("*.html")) if 'class="math' in p.read_text("utf-8")]
    assert pages_with_maths, "some lesson writes maths"
    for page in pages_with_maths:
        scripts = [s["src"] for s in _soup(page).find_all("script", src=True) if "tex-chtml" in s["src"]]
        assert len(scripts) == 1, f"{page.name} loads MathJax {len(scripts)} times"
        assert (page.parent / urlsplit(scripts[0]).path).resolve() == (html / "_static/mathjax/tex-chtml.js").resolve()
    fonts = html / "_static/mathjax/output/chtml/fonts/woff-v2"
    assert (fonts / "MathJax_Main-Regular.woff").is_file()
    assert (html / "_static/mathjax/input/tex/extensions/ams.js").is_file()
