"""The engine's promises that a notebook cannot check: a run SIGKILLed mid-run and resumed ends bit-identical to an
uninterrupted one (one stream or two named streams), a resume with a changed setting is refused, and `torchrun` DDP
keeps the ranks' weights identical. Jobs live in tests/_train_job.py."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT/'tests'/'_train_job.py'


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    env.pop('SSLSEG_DEVICE', None)
    return env


def _run(run_dir, *args, timeout=240):
    r = subprocess.run([sys.executable, str(JOB), str(run_dir), *map(str, args)], env=_env(), capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _train_log(run_dir):
    rows = [json.loads(l) for l in (Path(run_dir)/'metrics.jsonl').read_text().splitlines() if l.strip()]
    return [(r['step'], r['loss'], r['lr']) for r in rows if r['kind'] == 'train']


def _assert_same_state(a, b):
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert sa.keys() == sb.keys()
    diff = {k: (sa[k].double() - sb[k].double()).abs().max().item() for k in sa if not torch.equal(sa[k], sb[k])}
    assert not diff, f"resumed run differs from the uninterrupted one: {diff}"


@pytest.mark.parametrize('workers,streams', [(0, False), (2, False), (0, True), (1, True)],
                         ids=['one-stream', 'one-stream-workers', 'two-streams', 'two-streams-workers'])
def test_kill_and_resume_is_exact(tmp_path, workers, streams):
    steps, ckpt_every = 24, 6
    common = ['--steps', steps, '--ckpt-every', ckpt_every, '--workers', workers] + (['--streams'] if streams else [])
    _run(tmp_path/'ref', *common)

    cut = tmp_path/'cut'
    p = subprocess.Popen([sys.executable, str(JOB), str(cut), *map(str, common), '--sleep', '0.15'], env=_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ck, t0 = cut/'checkpoint.pt', time.time()
    try:
        while not ck.exists():
            assert p.poll() is None, f"job ended before its first checkpoint: {p.stderr.read()[-2000:]}"
            assert time.time() - t0 < 180, "no checkpoint within 180 s"
            time.sleep(0.05)
        time.sleep(0.5)  # a few steps past the checkpoint, mid-run
        assert p.poll() is None, "the job finished before it could be killed; make it slower"
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == -signal.SIGKILL
    killed_at = torch.load(ck, weights_only=False)['step']
    assert 0 < killed_at < steps and killed_at % ckpt_every == 0
    assert not (cut/'final.pt').exists()
    logged = max(s for s, *_ in _train_log(cut))
    assert logged >= killed_at  # the log ran ahead of the checkpoint and gets truncated on resume

    if streams:
        ck = torch.load(ck, weights_only=False)
        assert ck['data'] == dict(labelled=12, unlabelled=20) and ck['sampler']['unlabelled']['position'] == killed_at*6
    _run(cut, *common)  # resume (same command, no sleep)
    run = json.loads((cut/'run.json').read_text())
    assert run['resumed_from_step'] == killed_at and run['status'] == 'done'
    _assert_same_state(tmp_path/'ref'/'final.pt', cut/'final.pt')
    assert _train_log(cut) == _train_log(tmp_path/'ref')


def test_resume_refuses_changed_config(tmp_path):
    _run(tmp_path/'a', '--steps', 4, '--ckpt-every', 2)
    before = (tmp_path/'a'/'checkpoint.pt').read_bytes()
    for args, says in [(['--batch-size', 2], 'batch_size (checkpoint 4, now 2)'),
                       (['--weight-decay', 0.01], 'weight_decay (checkpoint 0.0001, now 0.01)'),  # not compared before
                       (['--streams'], 'batch_sizes (checkpoint None, now {')]:
        r = subprocess.run([sys.executable, str(JOB), str(tmp_path/'a'), '--steps', '4', *map(str, args)], env=_env(),
                           capture_output=True, text=True, timeout=240)
        assert r.returncode != 0 and 'different config' in r.stderr and says in r.stderr, (args, r.stderr[-1500:])
    assert (tmp_path/'a'/'checkpoint.pt').read_bytes() == before


def _torchrun(run_dir, *args, nproc=2):
    torchrun = Path(sys.executable).parent/'torchrun'
    cmd = ([str(torchrun)] if torchrun.exists() else [sys.executable, '-m', 'torch.distributed.run'])
    r = subprocess.run([*cmd, '--standalone', '--nproc_per_node', str(nproc), str(JOB), str(run_dir), *map(str, args)],
                       env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


def _ddp_hashes(run_dir):
    return [json.loads((run_dir/f'hash_rank{r}.json').read_text()) for r in (0, 1)]


@pytest.mark.parametrize('optimizer', ['sgd', 'lars'])
def test_ddp_ranks_stay_identical(tmp_path, optimizer):
    steps = 6
    _torchrun(tmp_path/'ddp', '--steps', steps, '--ckpt-every', 3, '--optimizer', optimizer)
    h = _ddp_hashes(tmp_path/'ddp')
    assert [x['world_size'] for x in h] == [2, 2] and [x['backend'] for x in h] == ['gloo', 'gloo']
    # each rank's state before fit's final buffer sync (which copies rank 0's buffers everywhere): the parameters agree
    # because the gradients were all-reduced; the BN running statistics differ (each rank normalised its own shard)
    assert h[0]['params_before_sync'] == h[1]['params_before_sync'], "ranks' parameters diverged: gradients not all-reduced"
    assert h[0]['buffers_before_sync'] != h[1]['buffers_before_sync']
    assert h[0]['hash'] == h[1]['hash'], "ranks hold different weights or buffers after DDP training"
    assert h[0]['loss'] == h[1]['loss']  # logged scalars are averaged over ranks
    # rank 0 alone logs and checkpoints: one record per step, RNG states of both ranks in the checkpoint
    assert [s for s, *_ in _train_log(tmp_path/'ddp')] == list(range(1, steps + 1))
    ck = torch.load(tmp_path/'ddp'/'checkpoint.pt', weights_only=False)
    assert ck['world_size'] == 2 and len(ck['rng']) == 2
    assert not torch.equal(ck['rng'][0]['torch'], ck['rng'][1]['torch'])  # ranks augment differently
    run = json.loads((tmp_path/'ddp'/'run.json').read_text())
    assert run['params']['world_size'] == 2 and run['status'] == 'done'


@pytest.mark.parametrize('broken', ['allreduce', 'sync'])
def test_ddp_check_catches_a_broken_engine(tmp_path, broken):
    "The assertions above fail on an engine that skips the gradient all-reduce, or the final buffer sync."
    _torchrun(tmp_path/'ddp', '--steps', 4, '--ckpt-every', 2, '--break', broken)
    h = _ddp_hashes(tmp_path/'ddp')
    if broken == 'allreduce': assert h[0]['params_before_sync'] != h[1]['params_before_sync']
    else: assert h[0]['params_before_sync'] == h[1]['params_before_sync']
    assert h[0]['hash'] != h[1]['hash']
