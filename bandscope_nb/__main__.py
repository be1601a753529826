"""``python -m bandscope_nb`` runs the ``bandscope`` command."""

import sys

from .cli import main

sys.exit(main())
