"""``reference``: the model a user puts into a network, and the laboratory that shows it at depth.

**The model** (exported here): the mixer registry (:mod:`.mixers`), the drop-in wrapper and its
monitor (:mod:`.hyper`, :mod:`.health`), the token mixer (:mod:`.token_mixing`), the normalisations
(:mod:`.norms`), the forward taps (:mod:`.tap`) and the small models (:mod:`.models`: ``Architecture``,
the settings every configuration shares, ``ModelConfig``, ``Model``).

**The laboratory** (run, not imported by ``import reference``): the trainer ``python -m
reference.train`` (:mod:`.train`, :mod:`.schedule`), its run folders (:mod:`.runs`,
:mod:`.run_plots`), data (:mod:`.data`), INT8 experiments (:mod:`.quantization`) and the
studies (:mod:`.studies`). Two modules serve both: the measurements (:mod:`.metrics`: the
monitor and the trainer report the same gains) and the checkpoint format (:mod:`.checkpoint`:
``Model.from_checkpoint`` reads what the trainer writes).
"""

from .hyper import HyperConnected, expand_streams, load_plain_state_dict, monitor, reduce_streams, stream_functions
from .mixers import MIXERS, make_mixer, mixing_params
from .models import Architecture, Model, ModelConfig
from .tap import Tap
from .token_mixing import TokenMixBlock

__all__ = ["HyperConnected", "expand_streams", "reduce_streams", "stream_functions", "load_plain_state_dict",
           "monitor", "MIXERS", "make_mixer", "mixing_params", "Architecture", "Model", "ModelConfig", "Tap",
           "TokenMixBlock"]
