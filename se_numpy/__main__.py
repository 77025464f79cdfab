"""``python -m se_numpy`` is the same as the ``se-numpy`` command."""
import sys

from .cli import main

sys.exit(main())
