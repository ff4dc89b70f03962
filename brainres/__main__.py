"""``python -m brainres``: the same command line as ``brainres``."""

import sys

from brainres.cli import main

if __name__ == "__main__":
    sys.exit(main())
