"""`python -m bench [--users N] [--turns M] [--preset P] [--json]`."""

from __future__ import annotations

import sys

from bench.serving import main

if __name__ == "__main__":
    sys.exit(main())
