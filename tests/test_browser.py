"""What a learner sees, in a real browser: the course's JupyterLab and its website in headless Chromium.

JupyterLab is started as ``python3 course.py lab`` starts it (on 127.0.0.1, with a token, no browser opened, its
settings, workspaces and runtime files in a temporary folder, the news notification off); a lesson is opened, a
cheap cell is run, and the test asserts the notebook's title, a rendered stored figure, the fresh output and that no
error dialog came up. Then two pages of the built site are opened: their figures loaded and their maths typeset,
with every request answered by this machine. Screenshots go to ``build/screenshots/`` (git-ignored).

Chromium is Debian's (``apt-get install chromium``; ``.ci/run`` installs it when missing), driven by Playwright through
its executable path: Playwright's own browser download is never used. Without Chromium the tests are skipped with a
message that says how to install it.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from test_site import build_site_once

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "screenshots"
LESSON = "notebooks/00_welcome.ipynb"
TITLE = "00 · Welcome"
RUN_CELL_MARK = "environment_report()"  # the lesson's imports cell: imports and prints the environment report
INSTALL = ("install Debian's Chromium with `apt-get install chromium` (.ci/run does this when it is missing), "
           "or set COURSE_CHROMIUM to a Chromium or Chrome executable")
# the one picture a lesson itself loads from the internet: its Colab badge (offline, its alt text shows)
LESSON_OWN_REQUESTS = ("https://colab.research.google.com/assets/colab-badge.svg",)
SERVER_START_S = 120
CELL_RUN_S = 120


def chromium_executable() -> str | None:
    """COURSE_CHROMIUM, or the first Chromium on PATH."""
    wanted = os.environ.get("COURSE_CHROMIUM")
    if wanted:
        return wanted if Path(wanted).is_file() else shutil.which(wanted)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    executable = chromium_executable()
    if executable is None:
        pytest.skip(f"no Chromium found for the real-browser test: {INSTALL}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: run `python3 course.py setup` (requirements-dev.txt names it)")
    args = ["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox (containers, CI)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _install_is_current() -> bool:
    """Whether ``course.py``'s virtual environment is installed for the current requirements (its stamp matches)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_launcher", ROOT / "course.py")
    course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course)
    want = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in course.INSTALL_INPUTS)).hexdigest()
    return course.STAMP.exists() and course.STAMP.read_text().strip() == want


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The course's JupyterLab, started by ``course.py lab``; yields ``(base URL, token)``."""
    if not _install_is_current():
        pytest.skip("the course's .venv is not installed for the current requirements: run `python3 course.py setup` "
                    "(or `python3 course.py test`, which does it first)")
    home = tmp_path_factory.mktemp("jupyterlab")
    settings = {
        ("apputils-extension", "notification"): {"fetchNews": "false", "checkForUpdates": False},  # no news toast
        ("docmanager-extension", "plugin"): {"autosave": False},  # the lesson, run here, is never saved over
    }
    for (extension, plugin), values in settings.items():
        path = home / "settings" / "@jupyterlab" / extension / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               COURSE_MODE="smoke", COURSE_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("MPLBACKEND", None)  # the kernel draws inline, as for a learner
    port, token = _free_port(), secrets.token_hex(16)
    log = (home / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "course.py"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"JupyterLab did not start within {SERVER_START_S} s:\n"
                                     f"{(home / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        # course.py and the JupyterLab it started (and its kernels) share the session started above
        for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if server.poll() is not None:
                break
            os.killpg(server.pid, sig)
            try:
                server.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        log.close()


def _outside_requests(page, allowed_prefix: str) -> list[str]:
    """Start recording requests that go anywhere but ``allowed_prefix`` (or data:/blob: URLs)."""
    outside: list[str] = []
    local = (allowed_prefix, "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
    return outside


def test_a_lesson_opens_runs_and_shows_what_a_learner_expects(browser, lab):
    base, token = lab
    stored = (ROOT / LESSON).read_bytes()
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    outside = _outside_requests(page, base)
    page.goto(f"{base}/lab/tree/{LESSON}?token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)

    title = page.locator(".jp-NotebookPanel .jp-MarkdownOutput h1").first
    assert title.inner_text().startswith(TITLE)
    page.screenshot(path=str(SHOTS / "lab-00-welcome-opened.png"))

    cell = page.locator(".jp-NotebookPanel .jp-CodeCell").filter(has_text=RUN_CELL_MARK).first
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    prompt = cell.locator(".jp-InputArea-prompt")
    page.wait_for_function("el => el.textContent.trim() === '[1]:'", arg=prompt.element_handle(),
                           timeout=CELL_RUN_S * 1000)
    output = cell.locator(".jp-OutputArea-output").first.inner_text()
    assert "run mode" in output and "smoke" in output, f"the fresh output is not smoke mode's: {output[:500]}"
    assert "Traceback" not in cell.inner_text()
    cell.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "lab-00-welcome-ran-imports.png"))

    figure = page.locator(".jp-NotebookPanel .jp-OutputArea-output img").first
    figure.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=figure.element_handle(), timeout=20_000)
    box = figure.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 50, f"the stored figure is drawn {box}"
    page.screenshot(path=str(SHOTS / "lab-00-welcome-figure.png"))

    assert page.locator(".jp-Dialog").count() == 0, page.locator(".jp-Dialog").first.inner_text()
    assert page.locator(".jp-toast-message").count() == 0, "no notification (news, update) is shown"
    outside = [url for url in outside if url not in LESSON_OWN_REQUESTS]
    assert not outside, f"JupyterLab asked the internet for {outside}"
    page.close()
    assert (ROOT / LESSON).read_bytes() == stored, f"{LESSON} was saved over: restore it with git checkout"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site, served on 127.0.0.1; yields ``(base URL, html folder)``."""
    pytest.importorskip("jupyter_book", reason="install the course's tools: python3 course.py setup")
    html = build_site_once(tmp_path_factory)
    handler = functools.partial(_QuietHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", html
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _record_failure(failed: list, response) -> None:
    if response.status >= 400:
        failed.append(f"{response.status} {response.url}")


def _pages_with_maths(html: Path, n: int = 2) -> list[str]:
    pages = [p for p in sorted((html / "notebooks").glob("*.html")) if 'class="math' in p.read_text("utf-8")]
    return [f"notebooks/{p.name}" for p in pages[:n]]


def test_site_pages_show_their_figures_and_typeset_maths(browser, site):
    base, html = site
    pages = _pages_with_maths(html)
    assert len(pages) == 2, "two lessons write maths"
    for path in pages:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        outside = _outside_requests(page, base)
        failed: list[str] = []
        page.on("response", functools.partial(_record_failure, failed))
        page.goto(f"{base}/{path}", wait_until="load")
        n_maths = page.locator(".math").count()
        assert n_maths > 0
        page.wait_for_function(
            "() => [...document.querySelectorAll('.math')].every(m => m.querySelector('mjx-container'))",
            timeout=30_000)
        assert page.locator("mjx-merror").count() == 0, "MathJax reports a TeX error"
        figures = page.locator(".cell_output img")
        assert figures.count() > 0
        for i in range(figures.count()):
            figures.nth(i).scroll_into_view_if_needed()
            assert figures.nth(i).evaluate("img => img.complete && img.naturalWidth > 0"), f"{path}: figure {i}"
        maths = page.locator("mjx-container").first
        maths.scroll_into_view_if_needed()
        box = maths.bounding_box()
        assert box and box["width"] > 10, f"typeset maths has no size: {box}"
        page.wait_for_timeout(300)  # let the MathJax fonts swap in before the picture
        page.screenshot(path=str(SHOTS / f"site-{Path(path).stem}-maths.png"))
        assert not failed, f"{path}: requests that failed: {failed}"
        assert not outside, f"{path} asked the internet for {outside}"
        page.close()
