"""JupyterLab, for real: start `jupyter lab` on the project environment and drive it with headless Chromium (playwright).

The server listens on 127.0.0.1 (a free port) with a token and no browser; its config, data, runtime, settings and
workspace folders are temporary, and its root is a temporary folder holding only the notebooks a test writes there.
A test opens a notebook, runs all its cells through JupyterLab's own command (`notebook:run-all-cells`; the page
exposes `window.jupyterapp` with `--LabApp.expose_app_in_browser`), and checks in the rendered page:
- an ipywidgets explorer (a Dropdown whose change redraws a matplotlib figure in an Output widget) renders, and
  choosing another value changes the picture below it (the `<img>` data differs before and after);
- a `tqdm.auto` progress bar renders as a widget (not as text, not as "IProgress not found").
`test_checks_can_fail` runs the same checks on an explorer whose Dropdown is not observed and on a text tqdm bar
(`tqdm.std`) and requires both to fail. `test_report_explorer` opens nbs/report.ipynb (parameterised with papermill without executing it) on two small
runs, `test_retrieval_explorer` nbs/retrieval.ipynb on random-init and PixPro (a `ci` pretraining) features. Screenshots go to `_proc/screenshots/lab-*.png`.
Needs `/usr/bin/chromium` (`apt-get install chromium`; `.ci/run` installs it).
"""
import json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT/'_proc'/'screenshots'
TOKEN = 'sslseg-lab-test'

# ---- notebooks the tests write into the server's root ----

EXPLORER = '''\
import ipywidgets as W, matplotlib.pyplot as plt, numpy as np
from IPython.display import display
curves = {'sine': np.sin, 'cosine': np.cos, 'square': np.square}  # stand-ins for runs
pick, out = W.Dropdown(options=list(curves), value='sine', description='run'), W.Output()

def draw(change=None):
    with out:
        out.clear_output(wait=True)
        fig, ax = plt.subplots(figsize=(4, 2.5))
        x = np.linspace(-3, 3, 100)
        ax.plot(x, curves[pick.value](x)); ax.set_title(pick.value)
        plt.show()

OBSERVE
draw()
display(W.VBox([pick, out]))'''

PROGRESS = '''\
from tqdm.auto import tqdm
for _ in tqdm(range(20), desc='steps'): pass'''


def write_notebook(path:Path, cells:list[str]):
    "A notebook of code `cells` (python3 kernel) at `path`."
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata['kernelspec'] = dict(name='python3', display_name='Python 3 (ipykernel)', language='python')
    nbformat.write(nb, str(path))


def parameterised_copy(src:Path, dst:Path, params:dict):
    "Copy notebook `src` to `dst` with papermill's injected parameters cell, without executing it."
    import nbformat
    from papermill.iorw import load_notebook_node  # as papermill reads it (every cell gets its `tags` list)
    from papermill.parameterize import parameterize_notebook
    nb = load_notebook_node(str(src))
    nb = parameterize_notebook(nb, params, kernel_name='python3', language='python')
    nbformat.write(nb, str(dst))


# ---- the server and the browser ----

def _free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def lab():
    "A JupyterLab server on the project environment: (base url, root folder)."
    tmp = Path(tempfile.mkdtemp(prefix='sslseg-lab-'))
    root = tmp/'root'; root.mkdir()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp/'config'), JUPYTER_RUNTIME_DIR=str(tmp/'runtime'),
               JUPYTER_DATA_DIR=str(tmp/'data'), IPYTHONDIR=str(tmp/'ipython'), MPLCONFIGDIR=str(tmp/'mpl'),
               JUPYTER_PLATFORM_DIRS='1', PYTHONUNBUFFERED='1')
    env.pop('MPLBACKEND', None)  # the kernel's inline backend draws the figures
    # no "get notified about Jupyter news?" toast (and no fetch of the news from outside)
    notes = tmp/'settings'/'@jupyterlab'/'apputils-extension'/'notification.jupyterlab-settings'
    notes.parent.mkdir(parents=True); notes.write_text(json.dumps({'fetchNews': 'false'}))
    port = _free_port()
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
           '--ServerApp.port_retries=0', f'--IdentityProvider.token={TOKEN}', f'--ServerApp.root_dir={root}',
           '--LabApp.expose_app_in_browser=True', f'--LabApp.workspaces_dir={tmp/"workspaces"}',
           f'--LabApp.user_settings_dir={tmp/"settings"}', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
           '--LabApp.news_url=None', *(['--allow-root'] if os.geteuid() == 0 else [])]
    log = open(tmp/'lab.log', 'wb')
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f'http://127.0.0.1:{port}/'
    try:
        t0 = time.time()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{(tmp/'lab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f'{base}api/status?token={TOKEN}', timeout=2) as r:
                    if r.status == 200: break
            except OSError: pass
            if time.time() - t0 > 90: pytest.fail(f"jupyter lab did not answer in 90 s:\n{(tmp/'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, root
    finally:
        proc.terminate()  # its kernels are its children: the server shuts them down on SIGTERM
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, 9); proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)




def run_notebook(browser, base:str, name:str, timeout_s:float=60):
    "Open notebook `name` of the server's root in JupyterLab, run all cells, wait until done; return (page, panel)."
    page = browser.new_page()
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    # `reset`: a fresh workspace holding only this notebook (not the tabs an earlier test left open)
    page.goto(f'{base}lab/tree/{name}?reset&token={TOKEN}', wait_until='domcontentloaded', timeout=60_000)
    # the notebook open, its kernel started and idle
    page.wait_for_function("""name => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
        return !!(k && k.status === 'idle' && w.content && w.content.widgets.length
                  && w.context && w.context.path === name); }""", arg=name, timeout=60_000)
    panel = page.locator(f'[id="{page.evaluate("() => window.jupyterapp.shell.currentWidget.id")}"]')
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # every code cell has an execution count and the kernel is idle again
    page.wait_for_function("""() => { const w = window.jupyterapp.shell.currentWidget;
        const cells = w.content.widgets.filter(c => c.model.type === 'code');
        return w.sessionContext.session.kernel.status === 'idle'
            && cells.every(c => c.model.executionCount !== null); }""", timeout=timeout_s*1000)
    errs = panel.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
    tb = [e for e in errs if 'Traceback' in e or 'Error' in e]
    assert not tb, f"{name}: a cell failed:\n{tb[0][-2000:]}"
    assert not errors, f"{name}: JavaScript errors in JupyterLab: {errors}"
    return page, panel


def check_explorer(page, panel, name:str, shots:str|None=None, timeout_s:float=20):
    "The first Dropdown explorer of the notebook `panel` renders; choosing another value changes the picture below it."
    sel = panel.locator('.widget-dropdown select').first
    try: sel.wait_for(state='visible', timeout=timeout_s*1000)
    except Exception as e: raise AssertionError(f"{name}: no ipywidgets Dropdown rendered") from e
    img = panel.locator('.widget-output img').first
    try: img.wait_for(state='visible', timeout=timeout_s*1000)
    except Exception as e: raise AssertionError(f"{name}: the explorer shows no picture (Output widget <img>)") from e
    opts = sel.locator('option').all_inner_texts()
    assert len(opts) >= 2, f"{name}: the Dropdown offers {opts}: nothing to change to"
    before, value = img.get_attribute('src') or '', sel.input_value()
    assert before.startswith('data:image/'), f"{name}: the picture is not an inline image: {before[:60]!r}"
    if shots: sel.scroll_into_view_if_needed(); page.screenshot(path=f'{shots}-before.png')
    other = next(o for o in sel.locator('option').all() if o.get_attribute('value') != value)
    sel.select_option(value=other.get_attribute('value'))
    try:
        page.wait_for_function("([id, b]) => { const i = document.getElementById(id).querySelector('.widget-output img');"
                               " return !!i && i.getAttribute('src') !== b && i.complete && i.naturalWidth > 0; }",
                               arg=[panel.get_attribute('id'), before], timeout=timeout_s*1000)
    except Exception as e:
        raise AssertionError(f"{name}: choosing {other.inner_text()!r} in the Dropdown did not change the picture") from e
    if shots: page.screenshot(path=f'{shots}-after.png')
    return before, panel.locator('.widget-output img').first.get_attribute('src')


def check_progress(panel, name:str, timeout_s:float=20):
    "A `tqdm.auto` bar rendered as an ipywidgets progress bar that reached its end."
    text = ' '.join(panel.locator('.jp-OutputArea-output').all_inner_texts())
    assert 'IProgress not found' not in text, f"{name}: tqdm fell back to text: ipywidgets not usable in the kernel"
    bar = panel.locator('.widget-hprogress, .widget-progress').first
    try: bar.wait_for(state='visible', timeout=timeout_s*1000)
    except Exception as e: raise AssertionError(f"{name}: no progress-bar widget rendered (tqdm.auto)") from e
    label = panel.locator('.widget-hbox:has(.widget-hprogress)').first.inner_text()
    assert '20/20' in label, f"{name}: the progress widget does not show the finished loop: {label!r}"


# ---- tests ----

def test_explorer_and_progress(lab, browser):
    base, root = lab
    write_notebook(root/'explorer.ipynb', [EXPLORER.replace('OBSERVE', "pick.observe(draw, names='value')"), PROGRESS])
    SHOTS.mkdir(parents=True, exist_ok=True)
    page, panel = run_notebook(browser, base, 'explorer.ipynb')
    try:
        before, after = check_explorer(page, panel, 'explorer.ipynb', shots=str(SHOTS/'lab-explorer'))
        assert before != after
        check_progress(panel, 'explorer.ipynb')
        panel.locator('.widget-hprogress').first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS/'lab-progress.png'))
    finally: page.close()


def test_checks_can_fail(lab, browser):
    "An explorer whose Dropdown is not observed (the widget is broken) and a text-only tqdm bar fail the checks."
    base, root = lab
    write_notebook(root/'dead_explorer.ipynb', [EXPLORER.replace('OBSERVE', '# (no observe: the Dropdown redraws nothing)'),
                                                PROGRESS.replace('tqdm.auto', 'tqdm.std')])
    page, panel = run_notebook(browser, base, 'dead_explorer.ipynb')
    try:
        with pytest.raises(AssertionError, match='did not change the picture'):
            check_explorer(page, panel, 'dead_explorer.ipynb', timeout_s=5)
        with pytest.raises(AssertionError, match='no progress-bar widget'):
            check_progress(panel, 'dead_explorer.ipynb', timeout_s=3)
    finally: page.close()


# nbs/report.ipynb's run picker, opened as a user would, on two small runs written by the fixture.
REPORT_PARAMS: dict | None = dict(runs_dir='{runs}', sweeps='{spec}', fig_dir='{figs}', out_dir='{out}')


@pytest.fixture
def report_runs(tmp_path):
    "A runs folder with two fine-tuning runs (metrics + example predictions that differ) and a figure spec."
    import numpy as np
    runs = tmp_path/'runs'
    for i, init in enumerate(('random', 'byol')):
        d = runs/'finetune'/f'{init}-f1-s0'; d.mkdir(parents=True)
        (d/'metrics.json').write_text(json.dumps(dict(kind='finetune', method='supervised', dataset='synthcity',
            init_name=init, fraction=1.0, seed=0, test_miou=0.2 + 0.1*i, reported='test', class_names=['a', 'b'],
            class_colors=[[200, 30, 30], [30, 30, 200]], test_iou=[0.1, 0.3])))
        msk = np.zeros((2, 16, 24), np.int64); msk[:, :, 12:] = 1
        pred = msk if i else 1 - msk
        np.savez_compressed(d/'examples.npz', img=np.full((2, 3, 16, 24), 0.2 + 0.5*i, np.float32), msk=msk, pred=pred)
    spec = tmp_path/'spec.yaml'
    spec.write_text("figures:\n  - {name: gain, filter: {kind: finetune}, x: fraction, hue: init_name, y: test_miou}\n")
    return dict(runs=runs, spec=spec, figs=tmp_path/'figs', out=tmp_path/'report')


@pytest.mark.skipif(REPORT_PARAMS is None, reason="set REPORT_PARAMS to run the report explorer check")
def test_report_explorer(lab, browser, report_runs):
    base, root = lab
    params = {k: v.format(**report_runs) for k, v in (REPORT_PARAMS or {}).items()}
    parameterised_copy(ROOT/'nbs'/'report.ipynb', root/'report.ipynb', params)
    page, panel = run_notebook(browser, base, 'report.ipynb', timeout_s=120)
    try:
        SHOTS.mkdir(parents=True, exist_ok=True)
        check_explorer(page, panel, 'report.ipynb', shots=str(SHOTS/'lab-report'))
    finally: page.close()


# nbs/retrieval.ipynb's pixel explorer: random-init features against a PixPro checkpoint of a few `ci` steps.
@pytest.fixture
def pixpro_checkpoint(tmp_path):
    "A PixPro hand-off of the `ci` profile (4 steps on generated SynthCity), made by nbs/pretrain.ipynb with papermill."
    out = tmp_path/'pixpro'
    r = subprocess.run([sys.executable, '-m', 'papermill', str(ROOT/'nbs'/'pretrain.ipynb'), str(tmp_path/'pretrain.ipynb'),
                        '-p', 'method', 'pixpro', '-p', 'out_dir', str(out), '--cwd', str(ROOT/'nbs')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out/'backbone.pt'


def test_retrieval_explorer(lab, browser, pixpro_checkpoint, tmp_path):
    base, root = lab
    params = dict(arch='unet', backbone='unet', pixpro=str(pixpro_checkpoint), out_dir=str(tmp_path/'retrieval'),
                  fig_dir=str(tmp_path/'figs'))
    parameterised_copy(ROOT/'nbs'/'retrieval.ipynb', root/'retrieval.ipynb', params)
    page, panel = run_notebook(browser, base, 'retrieval.ipynb', timeout_s=180)
    try:
        SHOTS.mkdir(parents=True, exist_ok=True)
        before, after = check_explorer(page, panel, 'retrieval.ipynb', shots=str(SHOTS/'lab-retrieval'))
        assert before != after
    finally: page.close()
