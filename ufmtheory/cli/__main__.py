"""``python -m ufmtheory.cli``: the ``ufm`` command."""

import sys

from ufmtheory.cli import main

sys.exit(main())
