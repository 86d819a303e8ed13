"""The seed's ``large_gemm_auto_sweep.py``: the fp32 GEMM sweep.

Same as ``lc bench gemm-sweep [options]``.
"""

import sys

from lightning_core.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["gemm-sweep", *sys.argv[1:]]))
