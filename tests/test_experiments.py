"""End to end through the real notebooks: papermill as the README types it, runs tied to their configuration, every
registered dataset through `finetune.ipynb`, and the BYOL-gain sweep spec with its report."""
import hashlib, json, os, subprocess, sys, textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).parent))
from _trees import write_camvid_tree, write_folder_tree  # noqa: E402

def _env(tmp_path):
    # generated data shared across tests through SSLSEG_DATA (CI sets it); one thread per process on 2 cores
    return dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1',
                SSLSEG_DATA=os.environ.get('SSLSEG_DATA', str(tmp_path/'data')))

def _papermill(tmp_path, nb, *args, out='out.ipynb'):
    return subprocess.run([str(BIN/'papermill'), f'nbs/{nb}', str(tmp_path/out), *args, '--no-progress-bar'],
                          cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True)

def _digest(d:Path)->dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob('*.json'))}

def test_papermill_finetune_as_typed(tmp_path):
    "`papermill nbs/finetune.ipynb out.ipynb -p fraction 0.1` from the repository root, exactly as in the README."
    r = _papermill(tmp_path, 'finetune.ipynb', '-p', 'fraction', '0.1', '-r', 'out_dir', str(tmp_path/'run'))
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert m['kind'] == 'finetune' and m['fraction'] == 0.1 and (m['selected'], m['reported']) == ('val', 'test')
    assert m['protocol']['reported'] == 'test' and m['classes'] == 'cityscapes' and len(m['class_colors']) == 19
    assert 0 <= m['test_miou'] <= 1 and m['test_miou_lo'] <= m['test_miou_hi'] and m['identity']
    rec = json.loads((tmp_path/'run'/'run.json').read_text())
    assert rec['status'] == 'done' and rec['git']['sha'] and rec['peak_memory_mb'] > 0 and 'torch' in rec['versions']

def test_rerun_with_other_parameters_is_refused(tmp_path):
    "Issue 9, problem 1: a finished run re-opened with another crop or norm is refused before anything is written."
    run = tmp_path/'run'
    assert _papermill(tmp_path, 'finetune.ipynb', '-r', 'out_dir', str(run)).returncode == 0
    before = _digest(run)
    for args, key in ((('-p', 'crop_size', '32'), 'crop_size'), (('-r', 'norm', 'gn_ws'), 'norm')):
        r = _papermill(tmp_path, 'finetune.ipynb', '-r', 'out_dir', str(run), *args)
        assert r.returncode != 0 and key in r.stderr, r.stderr[-2000:]
        assert _digest(run) == before, f"re-run with {args} changed the finished run's records"

def test_typo_in_a_parameter_stops_a_direct_run(tmp_path):
    "Issue 9, problem 5: `-p fractoin 0.1` fails in the notebook itself, naming the typo (papermill only warns)."
    r = _papermill(tmp_path, 'finetune.ipynb', '-p', 'fractoin', '0.1', '-r', 'out_dir', str(tmp_path/'run'))
    assert r.returncode != 0 and 'fractoin' in r.stderr
    assert not (tmp_path/'run').exists(), "nothing may be written before the parameters are checked"

@pytest.mark.parametrize('keep', [False, True])
def test_ci_runs_without_out_dir_are_temporary(tmp_path, keep):
    "Issue 9: the README's ci example leaves no run folder in the temp folder, unless `-p keep True`."
    tmp = tmp_path/'tmp'; tmp.mkdir()
    args = [str(BIN/'papermill'), 'nbs/finetune.ipynb', str(tmp_path/'o.ipynb'), '-p', 'fraction', '0.5', '--no-progress-bar']
    r = subprocess.run(args + (['-p', 'keep', 'True'] if keep else []), cwd=ROOT, env=dict(_env(tmp_path), TMPDIR=str(tmp)),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    left = [p for p in tmp.iterdir() if p.name.startswith('sslseg-ci-')]
    assert (len(left) == 1 and list(left[0].glob('*/metrics.json'))) if keep else not left, left

def test_pretrain_unknown_method_before_data(tmp_path):
    "An unknown method stops pretraining before any data is generated."
    env_data = tmp_path/'fresh-data'
    r = subprocess.run([str(BIN/'papermill'), 'nbs/pretrain.ipynb', str(tmp_path/'o.ipynb'), '-r', 'method', 'nosuch',
                        '--no-progress-bar'], cwd=ROOT, env=dict(_env(tmp_path), SSLSEG_DATA=str(env_data)),
                       capture_output=True, text=True)
    assert r.returncode != 0 and 'nosuch' in r.stderr and 'byol' in r.stderr
    assert not env_data.exists(), "data was generated before the method was checked"

@pytest.mark.parametrize('dataset', ['camvid', 'folder', 'synthaerial'])
def test_finetune_any_registered_dataset(tmp_path, dataset):
    "Issue 8: CamVid (SegNet layout), a folder dataset with a class-table JSON and SynthAerial tiles (sliding window)."
    args = ['-r', 'dataset', dataset, '-p', 'fraction', '1.0', '-r', 'out_dir', str(tmp_path/'run')]
    if dataset == 'camvid': args += ['-r', 'data_dir', str(write_camvid_tree(tmp_path/'CamVid'))]
    if dataset == 'folder':
        root = write_folder_tree(tmp_path/'own')
        args += ['-r', 'data_dir', str(root), '-r', 'class_table', str(root/'classes.json')]
    r = _papermill(tmp_path, 'finetune.ipynb', *args)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert m['dataset'] == dataset and 0 <= m['test_miou'] <= 1
    want = {'camvid': ('val', 'test', 'full image'), 'folder': ('val', 'test', 'full image'),
            'synthaerial': (None, 'val', 'sliding window')}[dataset]
    if want[0]: assert m['selected'] == want[0]
    assert m['reported'] == want[1] and m['selected'] != m['reported'] and m['protocol']['eval'].startswith(want[2])

BYOL_CI = textwrap.dedent('''
    name: byol_gain_ci
    stages:
      - name: pretrain
        notebook: pretrain.ipynb
        params: {method: byol, dataset: synthcity, seed: 0}
        grid: {norm: [bn]}
      - name: finetune
        notebook: finetune.ipynb
        params: {dataset: synthcity, seed: 0}
        grid:
          init:
            - {init: random, init_name: random, norm: bn}
            - {init: {stage: pretrain, match: {norm: bn}, file: backbone.pt}, init_name: byol, norm: bn}
          fraction: [0.5, 1.0]
    figures:
      - {name: byol_gain, kind: curve, filter: {kind: finetune}, x: fraction, hue: init_name, y: test_miou, tables: iou_table}
''')

def _figures_snapshot()->dict:
    return {p.name: p.read_bytes() for p in sorted((ROOT/'figures').glob('*')) if p.is_file()}

def test_byol_gain_spec_and_report(tmp_path):
    "The spec-driven BYOL-gain sweep at the ci scale: 1 pretraining + 4 fine-tunes, a report, committed figures untouched."
    spec = tmp_path/'byol_ci.yaml'; spec.write_text(BYOL_CI)
    before = _figures_snapshot()
    cmd = [str(BIN/'sslseg-sweep'), str(spec), '--profile', 'ci', '--out', str(tmp_path/'runs'), '--jobs', '2', '--report']
    r = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    runs = tmp_path/'runs'/'ci'
    done = sorted(runs.rglob('metrics.json'))
    assert len(list((runs/'finetune').glob('*/metrics.json'))) == 4 and len(list((runs/'pretrain').glob('*/metrics.json'))) == 1
    byol = [json.loads((p.parent/'run.json').read_text()) for p in (runs/'finetune').glob('*/metrics.json')
            if json.loads(p.read_text())['init_name'] == 'byol']
    assert len(byol) == 2 and all(r['init_report']['fraction'] == 1.0 and r['init_report']['method'] == 'byol' for r in byol)
    figs = runs/'figures'
    for f in ('byol_gain.png', 'byol_gain.csv', 'iou_table.md', 'iou_table.csv'): assert (figs/f).stat().st_size > 0
    assert len((figs/'byol_gain.csv').read_text().splitlines()) == 1 + 4
    assert _figures_snapshot() == before, "a ci sweep must not touch the committed figures/"
    # run again: nothing is recomputed, every metrics.json byte-identical
    stamp = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in done if 'report' not in p.parts}
    r = subprocess.run(cmd[:-1], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in stamp} == stamp

def test_report_refuses_unlike_runs(tmp_path):
    "Issue 9, problem 2: a resnet18 and a resnet50 run are never averaged as two seeds of one curve."
    runs = tmp_path/'runs'
    for i, bb in enumerate(('resnet18', 'resnet50')):
        d = runs/f'r{i}'; d.mkdir(parents=True)
        (d/'metrics.json').write_text(json.dumps(dict(kind='finetune', method='supervised', dataset='synthcity',
            init_name='random', fraction=0.1, seed=i, backbone=bb, arch='fcn8s', test_miou=0.1, class_names=['a'],
            test_iou=[0.1])))
    spec = tmp_path/'s.yaml'
    spec.write_text("figures:\n  - {name: f, filter: {kind: finetune}, x: fraction, hue: init_name, y: test_miou}\n")
    r = _papermill(tmp_path, 'report.ipynb', '-r', 'runs_dir', str(runs), '-r', 'sweeps', str(spec))
    assert r.returncode != 0 and "differ in ['backbone']" in r.stderr

OWN_SPEC = """
name: own
stages:
  - name: finetune
    notebook: finetune.ipynb
    params: {dataset: synthcity}
    grid:
      seed: [0, 1]
figures:
  - {name: own_curve, filter: {kind: finetune}, x: fraction, hue: init_name, y: test_miou}
"""

def test_report_counts_the_runs_of_its_own_sweep(tmp_path):
    "Two sweeps may run one configuration each (plain fine-tunes of the BYOL and FCL sweeps): a figure counts its own."
    sys.path.insert(0, str(ROOT))
    from sslseg.experiments import load_sweep, sweep_jobs
    spec = tmp_path/'own.yaml'; spec.write_text(OWN_SPEC)
    runs = tmp_path/'runs'/'ci'
    own = [j.run_dir for j in sweep_jobs(load_sweep(spec), 'ci', tmp_path/'runs')]
    other = [runs/'finetune'/f'other-s{s}-00000000' for s in (0, 1)]  # the same configurations, run by another sweep
    for d, s in zip(own + other, (0, 1, 0, 1)):
        d.mkdir(parents=True)
        (d/'metrics.json').write_text(json.dumps(dict(kind='finetune', method='supervised', dataset='synthcity', init_name='random',
            fraction=0.1, seed=s, arch='fcn8s', backbone='resnet18', test_miou=0.1 + s/100, class_names=['a'], test_iou=[0.1])))
    r = _papermill(tmp_path, 'report.ipynb', '-p', 'profile', 'ci', '-r', 'runs_dir', str(runs), '-r', 'sweeps', str(spec),
                   '-r', 'fig_dir', str(tmp_path/'figs'))
    assert r.returncode == 0, r.stderr[-3000:]
    rows = (tmp_path/'figs'/'own_curve.csv').read_text().splitlines()[1:]
    assert len(rows) == 2 and all('other-' not in row for row in rows), rows
