"""The generated results (issue 15): the report writes a summary beside each figure, and the docs' Results page and the
README's results section are generated from those summaries — never typed.

A fake runs tree (`metrics.json` + `run.json` as the fine-tuning notebook writes them) goes through the real
`nbs/report.ipynb` (papermill), then `results_markdown`, `tools/readme.py` and `tools/build_docs.py`'s page writer.
Nothing here writes into the committed `figures/`.
"""
import importlib.util, json, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHA = 'c0ffee' + '0' * 34

def _tool(name:str):
    "tools/<name>.py as a module."
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', ROOT/'tools'/f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

def _fake_runs(runs:Path):
    "12 fine-tunes: 2 inits x 2 label fractions x 3 seeds, with their run records (git, device)."
    i = 0
    for init, norm in (('random', 'bn'), ('byol', 'gn_ws')):
        for f in (0.1, 1.0):
            for s in range(3):
                d = runs/'finetune'/f'{init}-f{f:g}-s{s}'; d.mkdir(parents=True); i += 1
                m = dict(kind='finetune', method='supervised', profile='quick', dataset='synthcity', scale='quick',
                         arch='fcn8s', backbone='resnet18', norm=norm, steps=150, batch_size=8, crop_size=96, lr=0.01,
                         init_name=init, fraction=f, seed=s, selected='val', reported='test',
                         pretrain_steps=300 if init == 'byol' else None, test_miou=0.1 + 0.05*f + 0.01*s,
                         class_names=['road', 'sky'], test_iou=[0.2, 0.3],
                         protocol=dict(eval='full image, single scale', selected='val', reported='test'))
                (d/'metrics.json').write_text(json.dumps(m))
                (d/'run.json').write_text(json.dumps(dict(kind='finetune', status='done', git=dict(sha=SHA, dirty=False),
                                                          device=dict(device='cpu', name='x86_64'))))

SPEC = """figures:
  - {name: gain, kind: curve, title: BYOL gain, filter: {kind: finetune, method: supervised}, x: fraction,
     hue: init_name, y: test_miou, tables: iou_table}
"""

@pytest.fixture(scope='module')
def reported(tmp_path_factory):
    "The fake runs drawn by the real report notebook; returns its folders."
    tmp = tmp_path_factory.mktemp('results')
    _fake_runs(tmp/'runs'); (tmp/'sweeps').mkdir(); (tmp/'sweeps'/'gain.yaml').write_text(SPEC)
    figs = tmp/'figures'
    def report():
        r = subprocess.run([str(BIN/'papermill'), 'nbs/report.ipynb', str(tmp/'report.ipynb'), '--no-progress-bar',
                            '-r', 'runs_dir', str(tmp/'runs'), '-r', 'sweeps', str(tmp/'sweeps'/'gain.yaml'),
                            '-r', 'fig_dir', str(figs), '-r', 'out_dir', str(tmp/'report')],
                           cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    before = {p: p.read_bytes() for p in (ROOT/'figures').glob('*')}
    report()
    assert {p: p.read_bytes() for p in (ROOT/'figures').glob('*')} == before, "the report touched the committed figures/"
    return dict(root=tmp, figs=figs, report=report)

def test_report_writes_the_summary(reported):
    figs = reported['figs']
    s = json.loads((figs/'gain.json').read_text())
    assert s['figure'] == dict(name='gain', title='BYOL gain', kind='curve', x='fraction', hue='init_name', y='test_miou',
                               filter=dict(kind='finetune', method='supervised'), source='gain.yaml')
    assert s['files'] == dict(figure='gain.png', data='gain.csv', tables=['iou_table.md', 'iou_table.csv'])
    for f in ('gain.png', 'gain.csv', 'iou_table.md', 'iou_table.csv'): assert (figs/f).stat().st_size > 0
    assert [(r['hue'], r['x'], r['n']) for r in s['rows']] == [('byol', 0.1, 3), ('byol', 1.0, 3), ('random', 0.1, 3),
                                                               ('random', 1.0, 3)]
    r = s['rows'][0]
    assert r['mean'] == pytest.approx(0.1 + 0.005 + 0.01) and r['lo'] < r['mean'] < r['hi']
    p = s['protocol']
    assert {k: p[k] for k in ('profile', 'dataset', 'scale', 'steps', 'batch_size', 'crop_size', 'selected', 'reported')} == \
        dict(profile='quick', dataset='synthcity', scale='quick', steps=150, batch_size=8, crop_size=96, selected='val',
             reported='test')
    assert (p['seeds'], p['n_runs'], p['norm'], p['pretrain_steps']) == ([0, 1, 2], 12, ['bn', 'gn_ws'], 300)
    assert (p['devices'], p['commits'], p['eval']) == (['cpu (x86_64)'], [SHA], 'full image, single scale')
    # the report's own record lists the summary with the other files it drew
    drawn = json.loads((reported['root']/'report'/'metrics.json').read_text())['drawn']['gain']
    assert str(figs/'gain.json') in drawn

def test_summary_is_deterministic(reported):
    "The same runs give the same bytes: sorted keys, no time stamp, no absolute path."
    figs = reported['figs']
    before = {p.name: p.read_bytes() for p in figs.iterdir()}
    reported['report']()
    after = {p.name: p.read_bytes() for p in figs.iterdir()}
    assert after == before
    text = before['gain.json'].decode()
    assert str(reported['root']) not in text and text == json.dumps(json.loads(text), indent=1, sort_keys=True,
                                                                     ensure_ascii=False) + '\n'

def test_results_markdown(reported):
    from sslseg.results import Family, results_markdown
    fams = [Family('byol', 'BYOL pretraining', ('sweeps/gain.yaml',), 'Does BYOL help?'), Family('pixpro', 'PixPro'),
            Family('video', 'Video', ('sweeps/video.yaml',))]
    md = results_markdown(reported['figs'], root=reported['root'], families=fams, level=2)
    assert md.startswith('1 of 3 families have results')
    assert '## 1. BYOL pretraining\n\nDoes BYOL help?\n\n![BYOL gain](figures/gain.png)' in md
    # the table: one row per init, one column per label fraction, mean [95% interval] in %
    lines = md.splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith('| test mIoU (%)'))
    assert [c.strip() for c in lines[head].split('|')[1:-1]] == ['test mIoU (%)', '10%', '100%']
    byol = [c.strip() for c in lines[head + 2].split('|')[1:-1]]
    assert byol[0] == 'byol' and byol[1].startswith('11.5 [') and byol[2].startswith('16.0 [')
    assert 'over 3 seeds' in md
    # the protocol card
    for text in ('synthcity, scale `quick`, profile `quick`', 'fcn8s over resnet18, norm bn, gn_ws',
                 '150 steps, batch 8, crop 96, lr 0.01, pretraining 300 steps', '0, 1, 2 (3 seeds, 12 runs)',
                 'best checkpoint on `val`, mIoU reported on `test` (full image, single scale)', '**device**: cpu (x86_64)',
                 '**commit**: `c0ffee00`', '[`gain.csv`](figures/gain.csv)', '[`iou_table.csv`](figures/iou_table.csv)'):
        assert text in md, text
    # families without results
    assert '## 2. PixPro\n\n*Not yet run*: no sweep spec yet.' in md
    assert '## 3. Video\n\n*Not yet run*: `sweeps/video.yaml` is not written yet.' in md
    (reported['root']/'sweeps'/'video.yaml').write_text("figures:\n  - {name: flow, filter: {kind: finetune}}\n")
    md = results_markdown(reported['figs'], root=reported['root'], families=fams)
    assert '*Not yet run*: no summary `figures/flow.json` yet' in md

def test_workbook_families():
    from sslseg.results import FAMILIES
    assert list(FAMILIES) == ['byol', 'pixpro', 'fcl_video', 'weak_aerial', 'video_pretext']
    assert FAMILIES['byol'].specs == ('sweeps/byol_gain.yaml',) and (ROOT/'sweeps'/'byol_gain.yaml').is_file()

def test_readme_results_are_generated():
    "README.md's results section is `results_markdown` over the committed figures/, and README.md is up to date."
    from sslseg.results import results_markdown, RESULTS_MARKER
    readme = _tool('readme')
    assert readme.RESULTS_MARKER == RESULTS_MARKER
    assert RESULTS_MARKER in (ROOT/'nbs'/'index.ipynb').read_text(), "index.ipynb lost its results marker"
    text = readme.render()
    assert results_markdown(ROOT/'figures', root=ROOT).rstrip() in text and RESULTS_MARKER not in text
    assert (ROOT/'README.md').read_text() == text, "README.md is stale: python tools/readme.py"

def test_docs_results_page(reported, tmp_path):
    "The docs' page writer: the same markdown under a title, with the figure and its data copied beside the page."
    docs = _tool('build_docs')
    page = docs.write_results_page(reported['figs'], tmp_path)
    text = page.read_text()
    assert text.startswith('# Results\n') and '![BYOL gain](figures/gain.png)' in text and '| byol ' in text
    assert sorted(p.name for p in (tmp_path/'figures').iterdir()) == ['gain.csv', 'gain.png', 'iou_table.csv']
    assert (tmp_path/'figures'/'gain.png').read_bytes() == (reported['figs']/'gain.png').read_bytes()
    # every family of the workbook is listed; without summaries, as not yet run
    empty = tmp_path/'nofigs'; empty.mkdir()
    text = docs.write_results_page(empty, tmp_path/'site2').read_text()
    # one line per figure of a family's specs, one per family without a spec
    from sslseg.results import FAMILIES
    from sslseg.figures import figure_specs
    want = sum(len(figure_specs([ROOT/f])) if f else 1 for fam in FAMILIES.values() for f in (fam.specs or ('',)))
    assert want >= len(FAMILIES) and text.count('*Not yet run*') == want, (want, text.count('*Not yet run*'))
    assert all(f"{i}. {fam.title}" in text for i, fam in enumerate(FAMILIES.values(), 1))
