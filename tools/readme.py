#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb (the README's source; never edit README.md by hand).

`nbdev_readme` renders through Quarto, which cannot be installed here, so this does the same for the index
notebook's content: markdown cells as they are, code cells as fenced Python with their text outputs, images linked
when they are files of the repository. The results marker (`<!-- sslseg:results -->`, `sslseg.results.RESULTS_MARKER`)
becomes the generated results of every family (`sslseg.results.results_markdown` over the committed `figures/*.json`,
the same source as the docs' Results page), so the README's numbers are never typed.
Usage: python tools/readme.py [--check]  (--check: exit 1 if README.md is stale)
"""
from __future__ import annotations
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MARKER = '<!-- sslseg:results -->'  # = sslseg.results.RESULTS_MARKER (checked in `results`)
HEADER = "<!-- WARNING: generated from nbs/index.ipynb by tools/readme.py; edit the notebook, not this file -->\n\n"

def results(level:int=3)->str:
    "The generated results of every family, from the committed `figures/`."
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    from sslseg.results import results_markdown, RESULTS_MARKER as marker
    if marker != RESULTS_MARKER: raise SystemExit(f"tools/readme.py: results marker {RESULTS_MARKER!r} != sslseg's {marker!r}")
    return results_markdown(ROOT/'figures', root=ROOT, img_dir='figures', level=level).rstrip()

def render(nb_path:Path=ROOT/'nbs'/'index.ipynb')->str:
    "README text of the index notebook."
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source']).rstrip()
        if not src or src.startswith('#| hide'): continue
        if c['cell_type'] == 'markdown': parts.append(src.replace(RESULTS_MARKER, results()) if RESULTS_MARKER in src else src)
        elif c['cell_type'] == 'code':
            # a figure shown with Image(filename='../figures/x.png') becomes a link to the committed file
            m = re.search(r"Image\(filename=['\"]\.\./([^'\"]+)['\"]", src)
            if m: parts.append(f"![{Path(m.group(1)).stem}]({m.group(1)})"); continue
            if src.startswith('#| echo: false'): continue
            parts.append(f"```python\n{src}\n```")
            for o in c.get('outputs', []):
                text = ''.join(o.get('text', '') or o.get('data', {}).get('text/plain', '')).rstrip()
                if text: parts.append(f"```\n{text}\n```")
    return HEADER + '\n\n'.join(parts) + '\n'

def main(argv=None)->int:
    argv = sys.argv[1:] if argv is None else argv
    text, readme = render(), ROOT/'README.md'
    if '--check' in argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            print("README.md is out of date with nbs/index.ipynb: run `python tools/readme.py`", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text, encoding='utf-8')
    return 0

if __name__ == '__main__': sys.exit(main())
