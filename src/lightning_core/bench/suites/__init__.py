"""The comparison suites of ``lc bench``: every case of the seed's tables, and scaling sweeps.

Each suite module (``kernel``, ``gemm_sweep``, ``pipeline``, ``ml``, ``api_overhead``,
``scaling``) has the interface ``bench.cli`` expects of a suite: ``DESCRIPTION``,
``RESULT_NAME``, ``TABLE_COLUMNS``, ``run(args) -> rows`` and ``add_arguments(parser)``.
``common`` holds the case model and the run loop, ``peers`` the PyTorch side, ``timers`` the
pipelined and L2-flushed event timers, ``ceilings`` the physical floors. Importing this
package imports neither CuPy nor PyTorch.
"""
