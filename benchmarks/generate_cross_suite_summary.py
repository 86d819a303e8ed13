"""The seed's ``generate_cross_suite_summary.py``: summarise a folder of suite results into
``cross_suite_summary.{json,md}`` (``python3 benchmarks/generate_cross_suite_summary.py DIR``)."""

import sys

from lightning_core.bench.summary import main

if __name__ == "__main__":
    sys.exit(main())
