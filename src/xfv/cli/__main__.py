"""``python -m xfv.cli``: the same as the ``xfv`` command."""

import sys

from xfv.cli import main

sys.exit(main())
