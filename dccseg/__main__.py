"""``python -m dccseg`` runs the command line."""

import sys

from .cli import main

if __name__ == "__main__":  # worker processes (spawn) import this module too
    sys.exit(main())
