"""Berth's benchmarks: scripts run from the repository root as `python -m bench.NAME` (bench.gpu is a package).

`bench._common` holds what they share. Nothing here is part of the installed package.
"""
