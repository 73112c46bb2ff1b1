"""Tiny training job driven by tests/test_train.py: run to the end, get SIGKILLed mid-run and resumed, or run
under `torchrun`. The data set draws its augmentations from torch, NumPy and Python RNGs, the model has dropout
and an EMA target updated in `on_step_end`, so exact resume needs every piece of state the engine saves.
`--streams` trains on two named streams (labelled + unlabelled, their own batch sizes); `--break` swaps in a broken
engine piece (no gradient all-reduce, no final buffer sync) to show that the DDP test catches it."""
import argparse, copy, hashlib, json, random, sys, time
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import Dataset

import sslseg.train
from sslseg.train import TrainConfig, fit, SupervisedSeg, init_distributed, cleanup_distributed, get_rank, get_world_size


class AugSet(Dataset):
    "12 random 3x12x12 images with 3-class masks; flips (torch), noise (numpy) and brightness (python `random`)."
    def __init__(self, n=12, size=12):
        g = torch.Generator().manual_seed(0)
        self.msk = torch.randint(0, 3, (n, size//3, size//3), generator=g).repeat_interleave(3, 1).repeat_interleave(3, 2)
    def __len__(self): return len(self.msk)
    def __getitem__(self, i):
        msk = self.msk[i].clone()
        img = F.one_hot(msk, 3).permute(2, 0, 1).float()
        img = img*random.uniform(0.8, 1.2) + torch.from_numpy(np.random.normal(0, 0.3, img.shape).astype(np.float32))
        if torch.rand(()) < 0.5: img, msk = img.flip(-1), msk.flip(-1)
        return img, msk


class Images(Dataset):
    "The images of an `AugSet` of `n` samples, without masks (the unlabelled stream)."
    def __init__(self, n=20): self.ds = AugSet(n)
    def __len__(self): return len(self.ds)
    def __getitem__(self, i): return self.ds[i][0]


class EMASeg(SupervisedSeg):
    "Supervised loss plus an EMA copy of the model updated in `on_step_end` (BYOL-style state), optionally slowed down."
    def __init__(self, model, sleep=0.0):
        super().__init__(model)
        self.target, self.sleep = copy.deepcopy(model).requires_grad_(False), sleep
    def training_step(self, batch):
        if self.sleep: time.sleep(self.sleep)
        return super().training_step(batch)
    @torch.no_grad()
    def on_step_end(self, step, total):
        tau = 0.9 + 0.1*step/total
        for t, o in zip(self.target.parameters(), self.model.parameters()): t.lerp_(o, 1 - tau)
        if step == total - 1:  # the state each rank holds before fit's final `_sync_buffers` copies rank 0's buffers
            self.before_sync = dict(params=state_hash(dict(self.named_parameters())), buffers=state_hash(dict(self.named_buffers())))


class TwoStreamSeg(EMASeg):
    "Cross-entropy on the labelled batch + flip consistency of the predictions on the unlabelled batch."
    def training_step(self, batch):
        out = super().training_step(batch['labelled'])
        x = batch['unlabelled']
        p, q = self.model(x).softmax(1), self.model(x.flip(-1)).flip(-1).softmax(1)
        return dict(out, loss=out['loss'] + 0.5*F.mse_loss(p, q))


def _noop_hook(state, bucket):
    "A DDP communication hook that skips the all-reduce: every rank keeps its own gradients."
    fut = torch.futures.Future(); fut.set_result(bucket.buffer()); return fut


def break_engine(what):
    if what == 'allreduce':
        DDP = torch.nn.parallel.DistributedDataParallel
        init = DDP.__init__
        def patched(self, *a, **kw): init(self, *a, **kw); self.register_comm_hook(None, _noop_hook)
        DDP.__init__ = patched
    elif what == 'sync': sslseg.train._sync_buffers = lambda module: None


def tiny_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout2d(0.2), nn.Conv2d(8, 3, 1))


def state_hash(sd):
    h = hashlib.sha256()
    for k, v in sd.items(): h.update(k.encode()); h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('run_dir'); p.add_argument('--steps', type=int, default=30); p.add_argument('--ckpt-every', type=int, default=5)
    p.add_argument('--sleep', type=float, default=0.0); p.add_argument('--workers', type=int, default=0)
    p.add_argument('--optimizer', default='sgd'); p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--weight-decay', type=float, default=1e-4); p.add_argument('--streams', action='store_true')
    p.add_argument('--break', dest='broken', choices=['allreduce', 'sync'], default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.broken: break_engine(a.broken)
    dist_info = init_distributed()
    torch.manual_seed(0)
    method = (TwoStreamSeg if a.streams else EMASeg)(tiny_net(), a.sleep)
    data = dict(labelled=AugSet(), unlabelled=Images(20)) if a.streams else AugSet()
    cfg = TrainConfig(steps=a.steps, lr=0.05, batch_size=a.batch_size, optimizer=a.optimizer, log_every=1,
                      ckpt_every=a.ckpt_every, num_workers=a.workers, warmup_steps=2, grad_clip=5.0, device='cpu',
                      weight_decay=a.weight_decay, **(dict(batch_sizes=dict(unlabelled=6)) if a.streams else {}))
    res = fit(method, data, cfg, a.run_dir, progress=False)
    rank, run_dir = get_rank(), Path(a.run_dir)
    sd = method.state_dict()
    before = getattr(method, 'before_sync', {})
    (run_dir/f'hash_rank{rank}.json').write_text(json.dumps(dict(
        rank=rank, world_size=get_world_size(), backend=dist_info['backend'], hash=state_hash(sd), loss=res.get('loss'),
        params_before_sync=before.get('params'), buffers_before_sync=before.get('buffers'))))
    if rank == 0: torch.save(sd, run_dir/'final.pt')
    cleanup_distributed()


if __name__ == '__main__': main()
