"""Rendered-docs check: serve `_site/` on 127.0.0.1 and open it in headless Debian Chromium (Python playwright).

Needs the site (`make docs`, i.e. `python tools/build_docs.py`) and `/usr/bin/chromium` (`apt-get install chromium`;
`.ci/run` installs it). Checks that the home page and the metrics page render: a visible heading, and at least one
plot `<img>` that has loaded (`naturalWidth > 0`). Screenshots go to `_proc/screenshots/` for a human look.
"""
import functools, http.server, shutil, socket, tempfile, threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT/'_site'
SHOTS = ROOT/'_proc'/'screenshots'
CHROMIUM = '/usr/bin/chromium'
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync']
PAGES = {  # page -> (url path, heading it must show)
    'index': ('', None),  # the home page's heading is whatever index.ipynb's title is
    '01_metrics': ('01_metrics/', 'Metrics'),
}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


@pytest.fixture(scope='module')
def site_url():
    if not (SITE/'index.html').exists() and not (SITE/'01_metrics'/'index.html').exists():
        pytest.fail(f"{SITE} holds no built site: run `make docs` (python tools/build_docs.py) first")
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(SITE)))
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown(); srv.server_close()


@pytest.fixture(scope='module')
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium (as .ci/run does)")
    from playwright.sync_api import sync_playwright
    profile = tempfile.mkdtemp(prefix='sslseg-chromium-')
    with sync_playwright() as p:
        # an empty profile folder (playwright passes it as --user-data-dir)
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS, headless=True,
                                                   viewport={'width': 1280, 'height': 900})
        try: yield ctx
        finally: ctx.close(); shutil.rmtree(profile, ignore_errors=True)


def _check_page(browser, url:str, name:str, heading:str|None):
    page = browser.new_page()
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    try:
        resp = page.goto(url, wait_until='load', timeout=30_000)
        assert resp is not None and resp.ok, f"{url}: HTTP {resp.status if resp else 'no response'}"
        h1 = page.locator('article h1').first
        h1.wait_for(state='visible', timeout=10_000)
        text = h1.inner_text().strip().rstrip('¶').strip()
        assert text, f"{url}: empty <h1>"
        if heading: assert text == heading, f"{url}: heading {text!r}, expected {heading!r}"
        imgs = page.locator('article img')
        assert imgs.count() > 0, f"{url}: no <img> (plot output) in the page"
        loaded = page.evaluate("() => Array.from(document.querySelectorAll('article img'))"
                               ".filter(i => i.complete && i.naturalWidth > 0).length")
        assert loaded > 0, f"{url}: {imgs.count()} <img> present but none has loaded (naturalWidth 0)"
        imgs.first.scroll_into_view_if_needed()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS/f'{name}.png'))
        assert not errors, f"{url}: JavaScript errors: {errors}"
        return text
    finally: page.close()


def test_index_page(site_url, browser):
    assert (SITE/'index.html').exists(), ("_site/index.html is missing: nbs/index.ipynb (the home page and the README's "
                                          "source) has not been written yet, or `make docs` was not run")
    _check_page(browser, site_url, 'index', None)


def test_metrics_page(site_url, browser):
    _check_page(browser, site_url + PAGES['01_metrics'][0], '01_metrics', PAGES['01_metrics'][1])


def test_api_docs_rendered(site_url, browser):
    "The show_doc cells of the metrics notebook became API entries with their signatures."
    page = browser.new_page()
    try:
        page.goto(site_url + '01_metrics/', wait_until='load')
        for name in ('ConfusionMatrix', 'bootstrap_ci', 'mean_ci', 'iou_table'):
            assert page.locator(f'article h3:has-text("{name}")').count() > 0, f"no API entry for {name}"
    finally: page.close()
