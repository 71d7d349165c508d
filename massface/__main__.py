"""``python -m massface`` (what ``torchrun -m massface train CONFIG`` runs)."""

import sys

from massface.cli import main

if __name__ == "__main__":
    sys.exit(main())
