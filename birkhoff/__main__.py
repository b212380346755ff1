"""``python -m birkhoff``: the ``birkhoff`` command."""

import sys

from .cli import main

sys.exit(main())
