"""``reference``: the model a user puts into a network, and the laboratory that shows it at depth.

**The model** (exported here): the mixer registry and ``MixerSpec``, a mixer's settings checked
once (:mod:`.mixers`), the drop-in wrapper and its monitor (:mod:`.hyper`, :mod:`.health`), the
token mixer (:mod:`.token_mixing`), the normalisations (:mod:`.norms`), the forward taps
(:mod:`.tap`) and the small models (:mod:`.models`: ``Architecture``, a ``MixerSpec`` with the
settings every configuration shares, ``ModelConfig``, ``Model``).

**The laboratory** (:mod:`reference.lab`, not imported by ``import reference``): the trainer
(:mod:`.lab.train`, run as ``python -m reference.train``), its schedule, run folders and plots, the
data, the INT8 experiments and the studies. It imports the model; the model imports nothing of it.
Two model modules serve it too: the measurements (:mod:`.metrics`: the monitor and the trainer
report the same gains) and the checkpoint format (:mod:`.checkpoint`: ``Model.from_checkpoint``
reads what the trainer writes).
"""

from .hyper import HyperConnected, expand_streams, load_plain_state_dict, monitor, reduce_streams, stream_functions
from .health import Monitor
from .mixers import MIXERS, MixerSpec, make_mixer, mixing_params
from .models import Architecture, Model, ModelConfig
from .tap import Tap
from .token_mixing import TokenMixBlock

__all__ = ["HyperConnected", "expand_streams", "reduce_streams", "stream_functions", "load_plain_state_dict",
           "monitor", "Monitor", "MIXERS", "MixerSpec", "make_mixer", "mixing_params", "Architecture", "Model", "ModelConfig",
           "Tap", "TokenMixBlock"]
