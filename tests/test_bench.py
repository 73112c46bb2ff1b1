"""Command lines of the benchmark scripts in bench/: a tiny BYOL throughput run writes a complete results JSON.
(BYOL itself is tested in nbs/05a_pretext.byol.ipynb.)"""
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_byol_cli(tmp_path):
    out = tmp_path/'byol.json'
    cmd = [sys.executable, str(ROOT/'bench'/'bench_byol.py'), '--backbones', 'resnet18', '--batch', '2', '--size', '32',
           '--steps', '1', '--warmup', '0', '--hidden', '32', '--out', '16', '--sgemm-n', '128', '--json', str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    row, = res['results']
    assert row['backbone'] == 'resnet18' and row['ours_img_s'] > 0 and row['lightly_img_s'] > 0
    assert row['flops_per_step_ours'] > 0 and res['sgemm_peak_gflop_s']['used'] > 0
    # same backbone, same heads: the two implementations do the same arithmetic per step (within 1%)
    assert abs(row['flops_per_step_ours'] / row['flops_per_step_lightly'] - 1) < 0.01
    assert 'ours/lightly' in r.stdout
