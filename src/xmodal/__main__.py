"""``python -m xmodal ARGS`` runs the ``xmodal`` command; ``torchrun --nproc_per_node N -m xmodal fit …`` runs
it data-parallel (:mod:`xmodal.distributed`)."""

import sys

from xmodal.cli.parser import main

sys.exit(main())
