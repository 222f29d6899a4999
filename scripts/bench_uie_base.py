"""Thin entry point: the experiment lives in ``lab/bench_uie_base.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.bench_uie_base import main

if __name__ == "__main__":
    sys.exit(main())
