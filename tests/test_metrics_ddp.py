"""`ConfusionMatrix.all_reduce` under real DDP: two gloo processes on the CPU, each evaluating half of a split, end with
the matrix (and per-image matrices) of the whole split, as one process evaluating all of it."""
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sslseg.metrics import ConfusionMatrix

C, N = 5, 6  # classes, images


def _split():
    g = torch.Generator().manual_seed(0)
    pred, tgt = torch.randint(0, C, (N, 8, 8), generator=g), torch.randint(0, C, (N, 8, 8), generator=g)
    tgt[:, :2] = 255
    return pred, tgt


def _worker(rank, world, port, out):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
    try:
        pred, tgt = _split()
        cm = ConfusionMatrix(C, keep_per_image=True)
        for i in range(rank, N, world): cm.update(pred[i:i+1], tgt[i:i+1])  # this rank's shard
        cm.all_reduce()
        if rank == 0: torch.save(dict(mat=cm.mat, per_image=cm.per_image, miou=cm.compute()['miou'],
                                      backend=dist.get_backend(), world_size=dist.get_world_size()), out)
    finally: dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def test_all_reduce_two_processes(tmp_path):
    out = tmp_path/'rank0.pt'
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    r = torch.load(out)
    assert (r['backend'], r['world_size']) == ('gloo', 2)  # really two processes over a real backend
    pred, tgt = _split()
    ref = ConfusionMatrix(C).update(pred, tgt)
    assert torch.equal(r['mat'], ref.mat)
    assert abs(r['miou'] - ref.compute()['miou']) < 1e-12
    assert len(r['per_image']) == N and torch.equal(torch.stack(r['per_image']).sum(0), ref.mat)


def test_all_reduce_single_process_is_noop():
    pred, tgt = _split()
    cm = ConfusionMatrix(C).update(pred, tgt)
    before = cm.mat.clone()
    assert not dist.is_initialized()
    assert torch.equal(cm.all_reduce().mat, before)
