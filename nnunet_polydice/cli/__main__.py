"""``python -m nnunet_polydice.cli``: the ``nnunet-polydice`` command by its interpreter (Slurm scripts run it so,
with the absolute path of the interpreter, from a plain login shell)."""

import sys

from nnunet_polydice.cli import main

sys.exit(main())
