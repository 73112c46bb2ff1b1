# Hand-written, not generated: nbdev 2 writes no __init__.py for subpackages and never overwrites this file.
# Re-exports the public API of nbs/05*_pretext.*.ipynb; importing the package registers every pretext recipe
# (`get_pretext('byol')`), whichever of its modules is imported first.
from .core import *
from .byol import *
from .health import *
from .pixpro import *
from .video import *
from .colorization import *
