# Hand-written, not generated: nbdev 2 writes no __init__.py for subpackages and never overwrites this file.
# Re-exports the public API of nbs/03*_models.*.ipynb; importing the registry also registers every model family.
from .backbones import *
from .heads import *
from .unet import *
from .registry import *
