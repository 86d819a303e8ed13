"""Operators: one module per family. Each checks its arguments, defines the float64 reference
and sends the call down the dispatch road. Ops never import a particular backend."""
