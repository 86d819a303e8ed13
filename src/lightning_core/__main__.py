"""``python -m lightning_core`` runs the ``lc`` command line."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
