"""The seed's ``dl_all_bench.py``: its DL suite was the large-GEMM sweep.

Same as ``lc bench gemm-sweep [options]``.
"""

import sys

from lightning_core.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["gemm-sweep", *sys.argv[1:]]))
