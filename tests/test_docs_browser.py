"""Rendered-docs check: serve `_site/` on 127.0.0.1 and open it in headless Debian Chromium (Python playwright).

Needs the site (`make docs`, i.e. `python tools/build_docs.py`) and `/usr/bin/chromium` (`apt-get install chromium`;
`.ci/run` installs it). `SSLSEG_SITE=DIR` checks another built site (used to show the checks fail on a broken one).
Checks, on the home, metrics and BYOL pages:
- a visible heading; every `<img>` of the article has loaded (`naturalWidth > 0`), not just one (and the metrics and
  BYOL pages have one);
- the formulas are typeset by the site's own MathJax (its elements exist, no TeX error, no raw `$…$`/`$$…$$` left in
  the visible text);
- no request failed and none left 127.0.0.1 (the site works offline: no CDN; only the theme's optional fetch of
  the repository's star count from api.github.com, which fails quietly offline, is let through);
and, over every page of the site, that every link into the docs resolves to a file of the site (nbdev's doc links
rewritten from the public doc_host to the local pages). `SSLSEG_FIGURES=DIR` names the figure summaries a site was
built from (`build_docs.py --figures DIR`; default `figures/`). The Results page (generated from `figures/*.json`) is in the
nav and shows every family: for each figure summary its picture (loaded) and its table with 95% intervals (a real
`<table>`), and "Not yet run" for each family without results. `test_checks_can_fail` runs each check on a small broken
site and requires it to fail. Screenshots go to `_proc/screenshots/` for a human look.
"""
import functools, http.server, os, re, sys, threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get('SSLSEG_SITE') or ROOT/'_site').resolve()
# the figure summaries the site's Results page was built from (`build_docs.py --figures DIR` with SSLSEG_FIGURES=DIR)
FIGURES = Path(os.environ.get('SSLSEG_FIGURES') or ROOT/'figures').resolve()
SHOTS = ROOT/'_proc'/'screenshots'
PUBLIC_DOCS = 'sslseg.github.io'  # settings.ini doc_host: no page of the built site may link there
PAGES = {  # page -> (url path, heading it must show, must hold formulas, must hold a picture)
    # the home page's heading is whatever index.ipynb's title is; its results (and their figures) are on the Results page
    'index': ('', None, False, False),
    '01_metrics': ('01_metrics/', 'Metrics', True, True),
    '05a_pretext.byol': ('05a_pretext.byol/', None, True, True),
}
# the renderer's output: MathJax 2 (HTML-CSS / CommonHTML), MathJax 3 (mjx-container) or KaTeX
MATH_SEL = '.MathJax, .MathJax_Display, .mjx-chtml, mjx-container, .katex'


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


def _serve(directory:Path):
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/"


def _need_site():
    if not (SITE/'index.html').exists() and not (SITE/'01_metrics'/'index.html').exists():
        pytest.fail(f"{SITE} holds no built site: run `make docs` (python tools/build_docs.py) first")


@pytest.fixture(scope='module')
def site_url():
    _need_site()
    srv, url = _serve(SITE)
    yield url
    srv.shutdown(); srv.server_close()




# ---- checks (each raises AssertionError naming the page and what is wrong) ----

def _outside(r)->bool: return urlsplit(r.url).scheme in ('http', 'https') and urlsplit(r.url).hostname != '127.0.0.1'

def _outside_ok(r)->bool:
    "An outside request a page may make and do without: the theme's fetch of the repository's facts (repo_url)."
    return _outside(r) and r.resource_type in ('fetch', 'xhr') and urlsplit(r.url).hostname == 'api.github.com'


def open_page(browser, url:str):
    "Open `url`; return (page, problems) where problems collects JS errors, failed and outside requests."
    page, problems = browser.new_page(), []
    page.on('pageerror', lambda e: problems.append(f"JavaScript error: {e}"))
    page.on('requestfailed', lambda r: _outside_ok(r) or not r.url.startswith('http')  # MathJax's about:blank frame
            or problems.append(f"request failed: {r.url[:120]} ({r.failure})"))
    page.on('response', lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url[:120]}"))
    page.on('request', lambda r: _outside(r) and not _outside_ok(r)
            and problems.append(f"{r.resource_type} requested from outside the site: {r.url[:120]}"))
    resp = page.goto(url, wait_until='load', timeout=30_000)
    assert resp is not None and resp.ok, f"{url}: HTTP {resp.status if resp else 'no response'}"
    return page, problems


def check_heading(page, url:str, heading:str|None)->str:
    h1 = page.locator('article h1').first
    h1.wait_for(state='visible', timeout=10_000)
    text = h1.inner_text().strip().rstrip('¶').strip()
    assert text, f"{url}: empty <h1>"
    if heading: assert text == heading, f"{url}: heading {text!r}, expected {heading!r}"
    return text


def check_images(page, url:str, need_one:bool=True):
    "Every `<img>` of the article has loaded (lazy ones are made eager first)."
    n = page.evaluate("() => { const a = Array.from(document.querySelectorAll('article img'));"
                      " a.forEach(i => { i.loading = 'eager'; }); return a.length; }")
    if need_one: assert n > 0, f"{url}: no <img> (plot output) in the page"
    try: page.wait_for_function("() => Array.from(document.querySelectorAll('article img')).every(i => i.complete)",
                                timeout=15_000)
    except Exception: pass  # still loading: reported below as not loaded
    bad = page.evaluate("() => Array.from(document.querySelectorAll('article img'))"
                        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute('src') || '').slice(0, 80))")
    assert not bad, f"{url}: {len(bad)} of {n} <img> did not load (naturalWidth 0): {bad}"


# visible text of the article outside code and outside the renderer's own elements
_VISIBLE_TEXT_JS = """() => {
  const art = document.querySelector('article') || document.body, out = [];
  const skip = 'script, style, pre, code, textarea, .MathJax, .MathJax_Display, .MathJax_Preview, .MJX_Assistive_MathML,'
             + ' .mjx-chtml, mjx-container, .katex, .headerlink';
  const w = document.createTreeWalker(art, NodeFilter.SHOW_TEXT);
  for (let n = w.nextNode(); n; n = w.nextNode()) {
    const el = n.parentElement;
    if (el.closest(skip)) continue;
    if (!el.getClientRects().length) continue;  // not displayed
    out.push(n.textContent);
  }
  return out.join(' ');
}"""
_RAW_TEX = re.compile(r'\$\$|\$[^$\s][^$]*?\$|\\\(|\\\[')


def check_maths(page, url:str, expect:bool=True)->int:
    "The page's formulas are typeset: renderer elements exist, no TeX error, no raw `$…$` left; returns the count."
    ok = page.evaluate("""() => new Promise(res => {
        if (window.katex && !window.MathJax) { res('katex'); return; }
        if (!(window.MathJax && window.MathJax.Hub && window.MathJax.Hub.Queue)) { res(''); return; }
        window.MathJax.Hub.Queue(() => res('mathjax'));  // runs after the startup typesetting
        setTimeout(() => res('timeout'), 20000); })""")
    n = page.locator(MATH_SEL).count()
    raw = _RAW_TEX.findall(page.evaluate(_VISIBLE_TEXT_JS))
    errors = page.locator('.merror, mjx-merror, .katex-error').count()
    if expect:
        assert ok in ('mathjax', 'katex'), f"{url}: no maths renderer loaded (MathJax/KaTeX) ({ok or 'absent'})"
        assert n > 0, f"{url}: no typeset formula ({MATH_SEL}) in the page"
    assert not raw, f"{url}: raw TeX delimiters left in the visible text: {raw[:5]}"
    assert not errors, f"{url}: {errors} formulas failed to typeset (TeX errors)"
    return n


_CI_CELL = re.compile(r'-?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\]')  # "12.5 [10.0, 15.1]": a mean and its interval


def check_results(page, url:str, figures:list[str], titles:list[str], n_not_run:int):
    "The Results page: a heading per family title; per figure its loaded picture and a table with intervals; not-yet-run notes."
    heads = [t.strip().rstrip('¶').strip() for t in page.locator('article h2').all_inner_texts()]
    for t in titles: assert any(t in h for h in heads), f"{url}: no heading for family {t!r} (headings: {heads})"
    for name in figures:
        img = page.locator(f'article img[src$="figures/{name}.png"]')
        assert img.count() == 1, f"{url}: no <img> of figures/{name}.png"
    if figures: check_images(page, url)
    cells = page.locator('article table td').all_inner_texts()
    n_ci = sum(bool(_CI_CELL.fullmatch(c.strip())) for c in cells)
    assert n_ci >= len(figures), f"{url}: {len(figures)} figure(s) but {n_ci} table cells with an interval ('m [lo, hi]')"
    text = page.locator('article').inner_text()
    assert '| ' not in text, f"{url}: raw markdown table text in the page"
    assert text.count('Not yet run') == n_not_run, \
        f"{url}: {text.count('Not yet run')} 'Not yet run' notes, expected {n_not_run}"


class _Links(HTMLParser):
    def __init__(self): super().__init__(); self.hrefs, self.ids = [], set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'a' and a.get('href'): self.hrefs.append(a['href'])
        if a.get('id'): self.ids.add(a['id'])
        if tag == 'a' and a.get('name'): self.ids.add(a['name'])


def link_problems(site:Path)->tuple[list[str], int]:
    "Links of every page of `site` into the docs that do not resolve to a file (or anchor) of the site; and the count."
    pages, problems, n = {}, [], 0
    def parsed(f:Path):
        if f not in pages: pages[f] = _Links(); pages[f].feed(f.read_text(encoding='utf-8', errors='replace'))
        return pages[f]
    for f in sorted(site.rglob('*.html')):
        for href in parsed(f).hrefs:
            u = urlsplit(href)
            if u.scheme in ('mailto', 'data', 'javascript', 'tel'): continue
            if u.scheme or u.netloc:
                if u.hostname == PUBLIC_DOCS: problems.append(f"{f.relative_to(site)}: public docs link {href}")
                continue  # other outside links (source on GitHub, papers) are not the docs
            n += 1
            path = unquote(u.path)
            tgt = (site/path.lstrip('/')) if path.startswith('/') else (f.parent/path if path else f)
            tgt = Path(os.path.normpath(tgt))
            if tgt.is_dir(): tgt = tgt/'index.html'
            if not tgt.is_file() or site.resolve() not in tgt.resolve().parents:
                problems.append(f"{f.relative_to(site)}: {href} -> no file {tgt}")
            elif u.fragment and tgt.suffix == '.html' and unquote(u.fragment) not in parsed(tgt).ids:
                problems.append(f"{f.relative_to(site)}: {href} -> no id {u.fragment!r} in {tgt.relative_to(site)}")
    return problems, n


# ---- the built site ----

def _check_page(browser, site_url:str, name:str):
    path, heading, maths, picture = PAGES[name]
    url = site_url + path
    page, problems = open_page(browser, url)
    try:
        text = check_heading(page, url, heading)
        check_images(page, url, need_one=picture)
        if maths: check_maths(page, url)
        else: check_maths(page, url, expect=False)  # whatever maths the page has is typeset
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS/f'{name}.png'))
        if maths:  # a close-up of the first displayed equation
            eq = page.locator('.MathJax_Display, mjx-container[display], .katex-display').first
            if eq.count():
                eq.evaluate("e => e.scrollIntoView({block: 'center'})")
                page.screenshot(path=str(SHOTS/f'{name}-maths.png'))
        assert not problems, f"{url}: {problems}"
        return text
    finally: page.close()


def test_index_page(site_url, browser):
    assert (SITE/'index.html').exists(), ("_site/index.html is missing: nbs/index.ipynb (the home page and the README's "
                                          "source) has not been written yet, or `make docs` was not run")
    _check_page(browser, site_url, 'index')


def test_metrics_page(site_url, browser):
    _check_page(browser, site_url, '01_metrics')


def test_byol_page(site_url, browser):
    _check_page(browser, site_url, '05a_pretext.byol')


def test_results_page(site_url, browser):
    "The generated Results page is in the nav and shows what `figures/*.json` holds; screenshot for a human look."
    sys.path.insert(0, str(ROOT))
    from sslseg.results import FAMILIES, read_summaries, results_markdown
    figs = FIGURES
    page, problems = open_page(browser, site_url)
    try:
        nav = page.locator('nav a[href$="results/"]')
        assert nav.count() > 0, "the home page's nav has no link to the Results page"
    finally: page.close()
    url = site_url + 'results/'
    page, problems = open_page(browser, url)
    try:
        check_heading(page, url, 'Results')
        check_results(page, url, sorted(read_summaries(figs)), [f.title for f in FAMILIES.values()],
                      results_markdown(figs).count('*Not yet run*'))
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS/'results.png'), full_page=True)
        assert not problems, f"{url}: {problems}"
    finally: page.close()


def test_api_docs_rendered(site_url, browser):
    "The show_doc cells of the metrics notebook became API entries with their signatures."
    page = browser.new_page()
    try:
        page.goto(site_url + '01_metrics/', wait_until='load')
        for name in ('ConfusionMatrix', 'bootstrap_ci', 'mean_ci', 'iou_table'):
            assert page.locator(f'article h3:has-text("{name}")').count() > 0, f"no API entry for {name}"
    finally: page.close()


METHOD_DOCS = {  # page -> public methods that must have their own API entry (show_doc(Class.method) cells)
    '00_core/': ('RunRecord.update', 'RunRecord.finish', 'RunLock.acquire', 'Run.close', 'Method.training_step'),
    '05_pretext/': ('PretextMethod.momentum_pairs', 'PretextMethod.handoff_state_dict', 'PretextRecipe.hparams',
                    'PretextRecipe.train_config'),
    '09a_figures/': ('FigureSpec.from_dict',),
}


def test_method_docs_rendered(site_url, browser):
    "Classes' public methods have API entries (heading + docstring) on their pages, not only the classes."
    page = browser.new_page()
    try:
        for path, names in METHOD_DOCS.items():
            page.goto(site_url + path, wait_until='load')
            heads = [t.strip().rstrip('¶').strip() for t in page.locator('article h3').all_inner_texts()]
            missing = [n for n in names if n not in heads]
            assert not missing, f"{path}: no API entry for {missing}"
    finally: page.close()


def test_links_resolve_inside_site():
    "Every link into the docs resolves to a file (and anchor) of the built site; none goes to the public doc_host."
    _need_site()
    problems, n = link_problems(SITE)
    assert n > 100, f"only {n} internal links found in {SITE}: is the site complete?"
    assert not problems, f"{len(problems)} of {n} links do not resolve inside the site:\n" + '\n'.join(problems[:20])


# ---- the checks themselves can fail ----

_PNG = ('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==')
_BROKEN = {
    'img/index.html': f'<article><h1>Images</h1><img src="data:image/png;base64,{_PNG}"><img src="missing.png"></article>',
    'tex/index.html': '<article><h1>Maths</h1><p>The loss $\\mathcal L = \\|q - z\\|^2$ and</p>'
                      '<p>$$\\mathcal L_{\\theta,\\xi} = 2 - 2\\cos$$</p></article>',
    'results/index.html': '<article><h1>Results</h1><h2>1. BYOL</h2><img src="figures/gain.png">'
                          '<p>| test mIoU (%) | 10% |<br>| byol | 12.0 [10.0, 14.0] |</p><h2>2. PixPro</h2></article>',
    'results-notable/index.html': '<article><h1>Results</h1><h2>1. BYOL</h2><img src="figures/ok.png"></article>',
    'links/index.html': '<article><h1>Links</h1><a href="https://sslseg.github.io/sslseg/metrics.html#iou_table">x</a>'
                        '<a href="../img/">ok</a><a href="../nosuch/">missing</a><a href="../img/#nosuch">anchor</a>'
                        '</article>',
}


def test_checks_can_fail(browser, tmp_path):
    """On a small broken site: one image of two broken, formulas left raw (no renderer), public and dead links, results
    pages with a missing figure, a table left as text, a missing family and a missing not-yet-run note."""
    for rel, html in _BROKEN.items():
        (tmp_path/rel).parent.mkdir(parents=True, exist_ok=True); (tmp_path/rel).write_text(f'<html><body>{html}</body></html>')
    import base64
    (tmp_path/'results-notable'/'figures').mkdir(); (tmp_path/'results-notable'/'figures'/'ok.png').write_bytes(base64.b64decode(_PNG))
    srv, url = _serve(tmp_path)
    try:
        page, problems = open_page(browser, url + 'img/')
        with pytest.raises(AssertionError, match='1 of 2 <img> did not load'): check_images(page, url + 'img/')
        assert any('404' in p for p in problems), problems
        page.close()
        page, _ = open_page(browser, url + 'tex/')
        with pytest.raises(AssertionError, match='no maths renderer'): check_maths(page, url + 'tex/')
        with pytest.raises(AssertionError, match='raw TeX'): check_maths(page, url + 'tex/', expect=False)
        page.close()
        page, _ = open_page(browser, url + 'results/')  # figure missing, table left as markdown text
        with pytest.raises(AssertionError, match='no heading for family'): check_results(page, url, [], ['Video'], 0)
        with pytest.raises(AssertionError, match='did not load'): check_results(page, url, ['gain'], ['BYOL'], 0)
        with pytest.raises(AssertionError, match='no <img> of figures/flow.png'): check_results(page, url, ['flow'], [], 0)
        with pytest.raises(AssertionError, match='raw markdown table'): check_results(page, url, [], ['BYOL', 'PixPro'], 0)
        page.close()
        page, _ = open_page(browser, url + 'results-notable/')  # the figure loads, but no table and no not-yet-run note
        with pytest.raises(AssertionError, match='table cells with an interval'): check_results(page, url, ['ok'], ['BYOL'], 0)
        with pytest.raises(AssertionError, match="0 'Not yet run' notes, expected 1"): check_results(page, url, [], ['BYOL'], 1)
        page.close()
    finally: srv.shutdown(); srv.server_close()
    problems, n = link_problems(tmp_path)
    assert n == 3 and len(problems) == 3, problems
    assert [p for p in problems if 'public docs link' in p] and [p for p in problems if 'no file' in p] \
        and [p for p in problems if "no id 'nosuch'" in p], problems
