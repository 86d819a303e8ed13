"""The seed's ``ai_model_all_bench.py``: the kernel, API-overhead and pipeline suites, in turn,
with the same options (``lc bench kernel|api-overhead|pipeline [options]``)."""

import sys

from lightning_core.bench.cli import main

if __name__ == "__main__":
    sys.exit(max(main([suite, *sys.argv[1:]]) for suite in ("kernel", "api-overhead",
                                                            "pipeline")))
