"Shared pytest fixtures: one headless Chromium for the browser checks (docs site, JupyterLab)."
import shutil, tempfile
from pathlib import Path

import pytest

CHROMIUM = '/usr/bin/chromium'
# as ../shared/TOOLCHAIN.md: without the background-networking flags Chromium's connections are refused offline
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync']

@pytest.fixture(scope='module')
def browser():
    "A Chromium context with an empty profile folder (Playwright passes it as --user-data-dir)."
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium (as .ci/run does)")
    from playwright.sync_api import sync_playwright
    profile = tempfile.mkdtemp(prefix='sslseg-chromium-')
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS, headless=True,
                                                   viewport={'width': 1280, 'height': 1000})
        try: yield ctx
        finally: ctx.close(); shutil.rmtree(profile, ignore_errors=True)
