"""``python -m bench``: every benchmark, one table (see :mod:`bench.run_all`)."""

from __future__ import annotations

import sys

from bench.run_all import main

sys.exit(main(sys.argv[1:]))
