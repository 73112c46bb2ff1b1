"Tiny datasets in real on-disk layouts, written by tests: learnable (each class has its own colour) and small."
import json
from pathlib import Path

import numpy as np
from PIL import Image

def _scene(rng, h:int, w:int, n_classes:int)->np.ndarray:
    "A label map of vertical bands (every class present), shifted per image."
    cols = (np.arange(w) * n_classes // w + rng.integers(n_classes)) % n_classes
    return np.broadcast_to(cols, (h, w)).astype(np.uint8).copy()

def _image(lab:np.ndarray, colors, rng)->np.ndarray:
    img = np.asarray(colors, np.float32)[lab] + rng.normal(0, 8, lab.shape + (3,))
    return img.clip(0, 255).astype(np.uint8)

def write_camvid_tree(root:Path, n:dict|None=None, size=(48, 64), seed:int=0)->Path:
    "CamVid in the SegNet layout: `{split}/` RGB images, `{split}annot/` single-channel ids 0..10 (11 = void)."
    from sslseg.classes import CAMVID
    rng, n = np.random.default_rng(seed), n or dict(train=6, val=3, test=3)
    for split, k in n.items():
        for d in (split, f'{split}annot'): (root/d).mkdir(parents=True, exist_ok=True)
        for i in range(k):
            lab = _scene(rng, *size, 11); lab[:2, :2] = 11  # a few void pixels
            Image.fromarray(_image(lab.clip(0, 10), CAMVID.colors, rng)).save(root/split/f'{split}_{i:03d}.png')
            Image.fromarray(lab).save(root/f'{split}annot'/f'{split}_{i:03d}.png')
    return root

FOLDER_CLASSES = dict(name='own', names=['ground', 'wall', 'thing'], colors=[[90, 90, 90], [200, 60, 40], [30, 160, 220]])

def write_folder_tree(root:Path, n:dict|None=None, size=(40, 56), seed:int=1)->Path:
    "A folder dataset: `images/{split}/`, colour-coded `labels/{split}/` and `classes.json` (the class table)."
    rng, n = np.random.default_rng(seed), n or dict(train=6, val=3, test=3)
    colors = FOLDER_CLASSES['colors']
    for split, k in n.items():
        for d in ('images', 'labels'): (root/d/split).mkdir(parents=True, exist_ok=True)
        for i in range(k):
            lab = _scene(rng, *size, len(colors))
            Image.fromarray(_image(lab, colors, rng)).save(root/'images'/split/f'{i:03d}.png')
            Image.fromarray(np.asarray(colors, np.uint8)[lab]).save(root/'labels'/split/f'{i:03d}.png')
    (root/'classes.json').write_text(json.dumps(FOLDER_CLASSES))
    return root
