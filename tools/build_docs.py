#!/usr/bin/env python
"""Build the documentation site offline: nbdev-processed notebooks -> mkdocs-material + mkdocs-jupyter -> `_site/`.

Usage: python tools/build_docs.py [--force] [--n_workers N] [--nbs DIR] [--figures DIR]

1. Process every notebook of `nbs/` (not `_*`, not in `_*`/`.*` folders) with nbdev's doc processors into `_proc/`
   (show_doc API cells, hidden cells dropped, doc links). This is what `nbdev_proc_nbs` does after its Quarto step;
   the CLI itself is not called because, without Quarto, it runs `sudo` to install Quarto and then
   `pip install -e .[dev]` with whatever `pip` is first on PATH, and writes `_quarto.yml`/`nbdev.yml`/`sidebar.yml`
   into `nbs/`.
2. Stage the processed notebooks in `_docs/` (mkdocs' `docs_dir`): Quarto front matter becomes a `# Title` and
   `> summary`, `#|` directives are honoured (`output: asis` cells become markdown, `echo: false` hides the input,
   `include: false` drops the cell) and stripped.
   nbdev's doc links (backticked names) point at the public `doc_host`+`doc_baseurl` of settings.ini
   (`https://…/metrics.html#confusionmatrix`): they are rewritten to the local page of the built site, relative to
   the page that holds them (`../01_metrics/#confusionmatrix`), so the site is self-contained.
   MathJax 2 is copied from the installed `jupyter-server-mathjax` package into `_docs/assets/mathjax/` (no CDN:
   the site typesets its formulas offline; mkdocs.yml loads it on every page through `extra_javascript`).
   The Results page (`results.md`) is generated from the figure summaries `figures/<name>.json` that the report
   writes beside each figure (`sslseg.results.results_markdown`, the same text as the README's results section);
   the figures and their data files are copied beside it. On the home page, the results marker of index.ipynb
   becomes a link to it.
3. Render `_site/` with `mkdocs.yml`, the nav generated here: Home (index.ipynb), Results, the numbered library
   notebooks in order, then the experiment notebooks. Notebooks are not executed; the site shows their committed
   outputs.
Any failure exits non-zero with a one-line reason on stderr.
"""
from __future__ import annotations
import argparse, json, os, re, shutil, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROC, STAGE, SITE = ROOT/'_proc', ROOT/'_docs', ROOT/'_site'
RESULTS_MARKER = '<!-- sslseg:results -->'  # = sslseg.results.RESULTS_MARKER: where index.ipynb's results go


class DocsError(Exception): pass


def find_notebooks(nbs:Path)->list[Path]:
    "Every documentable notebook under `nbs`, sorted by path; `_*` and `.*` files and folders are skipped."
    out = [p for p in nbs.rglob('*.ipynb')
           if not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts)]
    return sorted(out, key=lambda p: p.relative_to(nbs).as_posix())


MANIFEST = PROC/'.build_docs.json'

def _fingerprint(p:Path)->list: st = p.stat(); return [str(p.resolve()), st.st_mtime_ns, st.st_size]

def process(nbs:Path, notebooks:list[Path], n_workers:int, force:bool):
    "Run nbdev's doc processors over `nbs` into `_proc/` (cached unless `force`)."
    from nbdev.serve import proc_nbs
    for p in notebooks:  # name the file when one is not a notebook at all (nbdev's error would not)
        try: json.loads(p.read_text(encoding='utf-8'))['cells']
        except (ValueError, KeyError, TypeError) as e: raise DocsError(f"{p}: not a valid notebook ({e!r})") from e
    # nbdev's cache only compares mtimes with the cache folder's; also redo a notebook whose source file changed
    # in any way since it was processed (another checkout, a `git checkout` to an older commit, ...)
    old = json.loads(MANIFEST.read_text()) if MANIFEST.exists() and not force else {}
    new = {p.relative_to(nbs).as_posix(): _fingerprint(p) for p in notebooks}
    for rel, fp in new.items():
        if old.get(rel) != fp: (PROC/rel).unlink(missing_ok=True)
    if MANIFEST.exists(): MANIFEST.unlink()  # rewritten only after a successful run
    proc_nbs(path=str(nbs), n_workers=n_workers, force=force)
    MANIFEST.write_text(json.dumps(new, indent=1))


_DIRECTIVE = re.compile(r'^\s*#\s*\|\s*([\w-]+:?)\s*(.*)$')

def _directives(src:str)->tuple[dict, str]:
    "Leading `#| key: value` directives of a code cell and the source without them."
    lines, d = src.splitlines(), {}
    i = 0
    while i < len(lines) and (not lines[i].strip() or _DIRECTIVE.match(lines[i])):
        m = _DIRECTIVE.match(lines[i])
        if m: d[m.group(1).rstrip(':')] = m.group(2).strip().lower()
        i += 1
    return d, '\n'.join(lines[i:])


def _src(cell)->str: return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']


def _front_matter(cell)->dict|None:
    if cell['cell_type'] != 'raw': return None
    s = _src(cell).strip()
    if not (s.startswith('---') and s.endswith('---')): return None
    import yaml
    try: return yaml.safe_load(s.strip('-').strip()) or {}
    except yaml.YAMLError: return None


_QUARTO_ATTRS = re.compile(r'(\]\([^)]*\))\{[^{}\n]*(?:target|style)=[^{}\n]*\}')  # [source](url){target="_blank" ...}

def _md(text:str)->dict:
    import hashlib
    return dict(cell_type='markdown', id='md-' + hashlib.md5(text.encode()).hexdigest()[:12], metadata={}, source=text)


def page_url(rel:Path)->str:
    "Site URL (relative to the site root, `use_directory_urls`) of the page rendered from notebook `rel`."
    rel = Path(rel).with_suffix('')
    return '' if rel.name == 'index' and rel.parent == Path('.') else (
        f"{rel.parent.as_posix()}/" if rel.name == 'index' else f"{rel.as_posix()}/")


def doc_link_targets(notebooks_rel:list[Path])->dict[str, str]:
    "nbdev's public doc page of each notebook (`metrics.html`, as `_modidx.py` names it) -> its local page URL."
    from nbdev.doclinks import _nbpath2html
    return {_nbpath2html(Path(r)).as_posix(): page_url(r) for r in notebooks_rel}


def doc_host_base()->str:
    "The public address nbdev puts in front of its doc links: settings.ini `doc_host` + `doc_baseurl`, with a '/'."
    from urllib.parse import urljoin
    from nbdev.config import get_config
    cfg = get_config()
    return urljoin(cfg.doc_host + '/', cfg.doc_baseurl).rstrip('/') + '/'


def localize_links(text:str, page:str, targets:dict[str, str], base:str, missing:set|None=None)->str:
    "Rewrite `base`+`foo.html#x` links in `text` (of the page at site URL `page`) to relative local links."
    import posixpath
    pat = re.compile(re.escape(base) + r'([\w./-]*?\.html)?(#[^\s"\'<>()\[\]\\]*)?(?=[\s"\'<>()\[\]\\]|$)')
    def sub(m):
        doc, frag = m.group(1) or 'index.html', m.group(2) or ''
        if doc not in targets:
            if missing is not None: missing.add(m.group(0))
            return m.group(0)
        tgt = targets[doc]
        if frag.startswith('#_'): frag = ''  # a private helper has no doc entry of its own: link to its page
        if tgt == page and frag: return frag
        rel = posixpath.relpath(tgt or '.', page.rstrip('/') or '.')
        return ('./' if rel == '.' else rel + '/') + frag
    return pat.sub(sub, text)


def stage_notebook(src:Path, dst:Path, relink=None)->str:
    "Rewrite a processed notebook for mkdocs-jupyter (`relink`: applied to the notebook's JSON text); return its page title."
    nb = json.loads(src.read_text(encoding='utf-8'))
    cells, title = [], None
    for c in nb['cells']:
        s = _src(c)
        fm = _front_matter(c)
        if fm is not None:
            title = str(fm.get('title') or dst.stem)
            cells.append(_md(f"# {title}" + (f"\n\n> {fm['description']}" if fm.get('description') else '')))
            continue
        if c['cell_type'] == 'markdown' and s.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
        if c['cell_type'] != 'code': cells.append(c); continue
        d, body = _directives(s)
        if d.get('include') == 'false': continue
        if d.get('output') == 'asis':  # show_doc and friends: their markdown output is the content
            md = [''.join(o['data']['text/markdown']) for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {})]
            if md: cells.append(_md(_QUARTO_ATTRS.sub(r'\1', '\n\n'.join(md))))
            continue
        c = dict(c, source=body)
        if d.get('echo') == 'false':
            c['metadata'] = dict(c.get('metadata', {}), tags=[*c.get('metadata', {}).get('tags', []), 'hide_input'])
        if d.get('output') == 'false': c['outputs'] = []
        if not body.strip() and not c.get('outputs'): continue
        cells.append(c)
    if title is None:  # no front matter: use the first H1, else the file name
        h1 = next((m.group(1) for c in cells if c['cell_type'] == 'markdown'
                   for m in [re.match(r'#\s+(.+)', _src(c).strip())] if m), None)
        title = h1 or dst.stem
        if h1 is None: cells.insert(0, _md(f"# {title}"))
    nb['cells'] = cells
    # saved widget state makes nbconvert load @jupyter-widgets/html-manager from a CDN: the site stays offline, and
    # a widget's output shows its text fallback instead
    nb.get('metadata', {}).pop('widgets', None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(nb, indent=1, ensure_ascii=False)
    dst.write_text(relink(text) if relink else text, encoding='utf-8')
    return title


MATHJAX_DIR = 'assets/mathjax'  # where the site serves MathJax from (mkdocs.yml's extra_javascript names it)
# MathJax 2 as Jupyter configures it (TeX + MathML input, HTML-CSS output with the STIX-Web fonts that the package
# ships). Loaded before MathJax.js: a `window.MathJax` object is MathJax 2's configuration.
MATHJAX_CONFIG = """window.MathJax = {
  config: ["TeX-AMS-MML_HTMLorMML-full.js"],
  tex2jax: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
            processEscapes: true, processEnvironments: true},
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  "HTML-CSS": {availableFonts: [], imageFont: null, preferredFont: null, webFont: "STIX-Web",
               linebreaks: {automatic: true}},
  displayAlign: "center", messageStyle: "none",
  menuSettings: {zoom: "None"},
  // the hidden MathML copy kept for screen readers would ask for MathJax's TeX .otf fonts, which the package does
  // not ship (a 404 per page): it is never seen, so it needs no font of its own
  styles: {".MJX_Assistive_MathML, .MJX_Assistive_MathML *": {"font-family": "inherit !important"}}
};
"""
# parts of the package a page never asks for with this configuration (SVG output, translations, accessibility add-ons)
_MATHJAX_SKIP = ('jax/output/SVG', 'localization', 'extensions/a11y')


def copy_mathjax(dst:Path)->tuple[int, int]:
    "Copy MathJax 2 from the installed `jupyter-server-mathjax` package into `dst`; return (files, bytes)."
    try: import jupyter_server_mathjax
    except ImportError as e:
        raise DocsError("jupyter-server-mathjax is not installed (it provides MathJax for the offline docs): "
                        "pip install -e '.[dev]'") from e
    src = Path(jupyter_server_mathjax.__file__).parent/'static'
    if not (src/'MathJax.js').exists(): raise DocsError(f"{src/'MathJax.js'} is missing: reinstall jupyter-server-mathjax")
    n = size = 0
    for f in sorted(src.rglob('*')):
        rel = f.relative_to(src).as_posix()
        if not f.is_file() or rel.startswith(_MATHJAX_SKIP): continue
        (dst/rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dst/rel); n += 1; size += f.stat().st_size
    (dst/'mathjax-config.js').write_text(MATHJAX_CONFIG, encoding='utf-8')
    return n, size


RESULTS_PAGE = 'results.md'
RESULTS_LINK = ("The figure, the table with 95% intervals and the protocol card of every family are on the "
                "[Results](results/) page, generated from `figures/*.json`.")

def write_results_page(fig_dir:Path, stage_dir:Path)->Path:
    "Write the Results page into `stage_dir` from the figure summaries of `fig_dir`, with copies of their files."
    from sslseg.results import results_markdown, read_summaries, RESULTS_MARKER as marker
    if marker != RESULTS_MARKER: raise DocsError(f"results marker {RESULTS_MARKER!r} differs from sslseg.results' {marker!r}")
    summaries = read_summaries(fig_dir)
    for name, s in summaries.items():
        # the figure and its CSV data; a `.md` table would become a page of its own, the page links the CSV instead
        for f in [s['files']['figure'], s['files']['data'], *s['files'].get('tables', [])]:
            if f.endswith('.md'): continue
            if not (fig_dir/f).is_file(): raise DocsError(f"{fig_dir/name}.json names {f}, which {fig_dir} lacks: rerun the report")
            (stage_dir/'figures').mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fig_dir/f, stage_dir/'figures'/f)
    page = stage_dir/RESULTS_PAGE
    stage_dir.mkdir(parents=True, exist_ok=True)
    page.write_text("# Results\n\n> Every family's figure, its table (mean and 95% Student-t interval over seeds) and its "
                    "protocol card, generated when the docs are built from the summaries `figures/<name>.json` that the "
                    "report writes beside each figure (`make reproduce`). Nothing on this page is typed by hand.\n\n"
                    + results_markdown(fig_dir, root=ROOT, img_dir='figures', level=2), encoding='utf-8')
    return page


def stage(nbs:Path, notebooks:list[Path], fig_dir:Path=ROOT/'figures')->list:
    "Fill `_docs/` from `_proc/` (doc links made local, MathJax copied in, the Results page written); return the mkdocs nav."
    if STAGE.exists(): shutil.rmtree(STAGE)
    STAGE.mkdir()
    n, size = copy_mathjax(STAGE/MATHJAX_DIR)
    print(f"build_docs: MathJax 2 from jupyter-server-mathjax: {n} files, {size/2**20:.1f} MiB -> {MATHJAX_DIR}/")
    rels = [p.relative_to(nbs) for p in notebooks]
    targets, base, missing = doc_link_targets(rels), doc_host_base(), set()
    home, lib, exp = [], [], []
    for p, rel in zip(notebooks, rels):
        src = PROC/rel
        if not src.exists(): raise DocsError(f"{rel}: nbdev processing produced no {src.relative_to(ROOT)}")
        relink = lambda t, page=page_url(rel): localize_links(t, page, targets, base, missing).replace(RESULTS_MARKER, RESULTS_LINK)
        try: title = stage_notebook(src, STAGE/rel, relink)
        except (KeyError, ValueError, TypeError) as e: raise DocsError(f"{rel}: cannot stage processed notebook ({e!r})") from e
        entry = {title: rel.as_posix()}
        if rel.as_posix() == 'index.ipynb': home.append({'Home': 'index.ipynb'})
        elif rel.name[0].isdigit(): lib.append(entry)
        else: exp.append(entry)
    if missing: print(f"build_docs: WARNING: {len(missing)} doc links name no notebook of the site and stay public: "
                      f"{sorted(missing)[:5]}", file=sys.stderr)
    write_results_page(fig_dir, STAGE)
    print(f"build_docs: Results page from {len(list(fig_dir.glob('*.json')))} figure summaries in {fig_dir}")
    nav = home + [{'Results': RESULTS_PAGE}] + ([{'Library': lib}] if lib else []) + ([{'Experiments': exp}] if exp else [])
    if not home: print("build_docs: WARNING: nbs/index.ipynb is missing: the site has no home page", file=sys.stderr)
    return nav


def render(nav:list):
    "Render `_site/` from mkdocs.yml with the generated nav."
    from mkdocs.config import load_config
    from mkdocs.commands.build import build
    from mkdocs.exceptions import MkDocsException
    cfg_file = ROOT/'mkdocs.yml'
    if not cfg_file.exists(): raise DocsError(f"{cfg_file} is missing")
    try:
        cfg = load_config(str(cfg_file), nav=nav, docs_dir=str(STAGE), site_dir=str(SITE))
        build(cfg)
    except (MkDocsException, SystemExit) as e: raise DocsError(f"mkdocs build failed: {e}") from e


# ---- mkdocs hooks (mkdocs.yml `hooks:` loads this file as a module and calls these) ----
_HEADING = re.compile(r'<h([1-6])(\s[^>]*?)?\sid="([^"]*)"([^>]*)>(.*?)</h\1>', re.S)

def _text(html:str)->str: return re.sub(r'\s+', ' ', re.sub(r'<[^>]+>', '', html)).replace('¶', '').strip()


def on_page_content(html:str, page, config, files):
    """Make a notebook page's anchors unique and its table of contents point at them.

    nbconvert gives two headings with the same text the same id (`## LARS` and the `### LARS` API entry), while the
    toc (from mkdocs-jupyter) numbers them (`lars_1`) and slugs a heading made of code alone as `_1`: the toc then
    links to ids that do not exist. Ids are numbered as the toc does, and each toc entry takes the id of its heading
    (matched in document order by id, else by level)."""
    if not page.file.src_uri.endswith('.ipynb'): return html
    seen, heads = {}, []
    def dedupe(m):
        lvl, pre, hid, post, body = m.groups()
        n = seen.get(hid, 0); seen[hid] = n + 1
        new = hid if n == 0 else f"{hid}_{n}"
        if new != hid: body = body.replace(f'href="#{hid}"', f'href="#{new}"')
        heads.append((int(lvl), new))
        return f'<h{lvl}{pre or ""} id="{new}"{post}>{body}</h{lvl}>'
    html = _HEADING.sub(dedupe, html)
    items, stack = [], list(page.toc or [])[::-1]
    while stack:
        it = stack.pop(); items.append(it); stack.extend(list(it.children)[::-1])
    j = 0
    for it in items:
        k = next((k for k in range(j, len(heads)) if heads[k][1] == it.id), None)
        if k is None: k = next((k for k in range(j, len(heads)) if heads[k][0] == it.level), None)
        if k is None: continue
        it.id, j = heads[k][1], k + 1
    return html


def on_post_build(config):
    """A doc link to a method (`#cls.meth`, nbdev's anchor) whose page has no entry for it goes to its class."""
    site, ids = Path(config['site_dir']), {}
    def page_ids(f:Path):
        if f not in ids: ids[f] = set(re.findall(r'\sid="([^"]+)"', f.read_text(encoding='utf-8')))
        return ids[f]
    link = re.compile(r'href="((?:\.\./|\./)?[\w./-]*)#([\w-]+)\.([\w.-]+)"')
    for f in site.rglob('*.html'):
        text = f.read_text(encoding='utf-8')
        def sub(m):
            path, cls, meth = m.groups()
            tgt = (f.parent/path).resolve() if path else f
            if tgt.is_dir(): tgt = tgt/'index.html'
            if not tgt.is_file() or f"{cls}.{meth}" in page_ids(tgt) or cls not in page_ids(tgt): return m.group(0)
            return f'href="{path}#{cls}"'
        new = link.sub(sub, text)
        if new != text: f.write_text(new, encoding='utf-8')


def main(argv=None)->int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--force', action='store_true', help='reprocess every notebook (ignore the _proc/ cache)')
    ap.add_argument('--n_workers', type=int, default=2, help='parallel nbdev processing workers (0: serial)')
    ap.add_argument('--nbs', default=None, help='notebook folder (default: nbs_path of settings.ini)')
    ap.add_argument('--figures', default=None, help='figure summaries for the Results page (default: figures/)')
    a = ap.parse_args(argv)
    os.chdir(ROOT)  # nbdev finds settings.ini from the cwd
    # the processors import `sslseg` in spawned workers: make the checkout importable even without an editable install
    os.environ['PYTHONPATH'] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])])
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    t0 = time.time()
    try:
        if SITE.exists(): shutil.rmtree(SITE)  # a failed build must not leave an older site looking current
        nbs = Path(a.nbs).resolve() if a.nbs else ROOT/'nbs'
        notebooks = find_notebooks(nbs)
        if not notebooks: raise DocsError(f"no notebooks found in {nbs}")
        t = time.time(); process(nbs, notebooks, a.n_workers, a.force); t_proc = time.time() - t
        nav = stage(nbs, notebooks, Path(a.figures).resolve() if a.figures else ROOT/'figures')
        t = time.time(); render(nav); t_site = time.time() - t
    except DocsError as e:
        print(f"build_docs: ERROR: {e}", file=sys.stderr); return 1
    except Exception as e:  # a notebook that nbdev cannot process, a broken mkdocs.yml, ...
        import traceback; traceback.print_exc()
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ''
        hint = (" (nbdev's doc processor runs every exported cell and every cell holding an import: keep imports in"
                " their own cell, see STYLE.md)") if msg.startswith('Error in notebook') else ''
        print(f"build_docs: ERROR: {type(e).__name__}: {msg}{hint}", file=sys.stderr); return 1
    print(f"build_docs: {len(notebooks)} notebooks -> {SITE.relative_to(ROOT)}/ in {time.time() - t0:.1f} s "
          f"(nbdev processing {t_proc:.1f} s, mkdocs {t_site:.1f} s)")
    return 0


if __name__ == '__main__': sys.exit(main())
