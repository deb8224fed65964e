"""``python -m reconciler`` runs the ``edgefleet`` command."""

import sys

from .cli import main

sys.exit(main())
