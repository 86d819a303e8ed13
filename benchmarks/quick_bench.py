"""The seed's ``quick_bench.py``: the quick suite (attention, conv + ReLU, matmul).

Same as ``lc bench quick [options]``.
"""

import sys

from lightning_core.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["quick", *sys.argv[1:]]))
