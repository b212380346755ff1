"""The trainer's command line, :func:`reference.lab.train.main` (the trainer is :mod:`reference.lab.train`).

    python -m reference.train --mixer mhc --depth 256 --streams 4 --task charlm --out runs/x
    torchrun --nproc_per_node 2 -m reference.train --mixer kromhc ...   # DDP (gloo on CPU)
"""

import os
import sys

from .lab.train import main

if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun, once DDP has wrapped a model, torch 2.13 keeps the gloo group (and its threads) alive
        # after destroy_process_group; C++ static destruction at interpreter exit then kills 1 run in 5-10 under
        # load with "terminate called without an active exception" (SIGABRT), after every file is written.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
