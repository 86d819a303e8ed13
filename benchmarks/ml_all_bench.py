"""The seed's ``ml_all_bench.py``: linear classifier, matrix_sub, vector_add.

Same as ``lc bench ml [options]``.
"""

import sys

from lightning_core.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["ml", *sys.argv[1:]]))
