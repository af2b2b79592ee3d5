"""``python -m xmodal.cli ARGS`` runs the ``xmodal`` command (as worker processes and benchmarks do)."""

import sys

from xmodal.cli.parser import main

sys.exit(main())
