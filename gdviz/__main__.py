"""``python -m gdviz`` is the ``gdviz`` command."""

import sys

from .cli import main

sys.exit(main())
