"""`python -m vidssl ...` (also what `torchrun -m vidssl ...` runs)."""

import sys

from vidssl.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
