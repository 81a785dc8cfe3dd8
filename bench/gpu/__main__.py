"""`python -m bench.gpu`: the benchmark's command line (bench/gpu/cli.py)."""

import sys

from bench.gpu.cli import main

sys.exit(main())
