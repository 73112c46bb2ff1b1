"""Tiny training job driven by tests/test_train.py: run to the end, get SIGKILLed mid-run and resumed, or run
under `torchrun`. The data set draws its augmentations from torch, NumPy and Python RNGs, the model has dropout
and an EMA target updated in `on_step_end`, so exact resume needs every piece of state the engine saves."""
import argparse, copy, hashlib, json, random, sys, time
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import Dataset

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
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    init_distributed()
    torch.manual_seed(0)
    method = EMASeg(tiny_net(), a.sleep)
    cfg = TrainConfig(steps=a.steps, lr=0.05, batch_size=a.batch_size, optimizer=a.optimizer, log_every=1,
                      ckpt_every=a.ckpt_every, num_workers=a.workers, warmup_steps=2, grad_clip=5.0, device='cpu')
    res = fit(method, AugSet(), cfg, a.run_dir, progress=False)
    rank, run_dir = get_rank(), Path(a.run_dir)
    sd = method.state_dict()
    (run_dir/f'hash_rank{rank}.json').write_text(json.dumps(dict(rank=rank, world_size=get_world_size(), hash=state_hash(sd),
                                                               loss=res.get('loss'))))
    if rank == 0: torch.save(sd, run_dir/'final.pt')
    cleanup_distributed()


if __name__ == '__main__': main()
