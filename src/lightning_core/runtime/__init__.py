"""Runtime core: backends and their registry, devices, policies, the dispatch road."""
