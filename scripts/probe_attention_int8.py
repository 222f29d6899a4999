"""Thin entry point: the experiment lives in ``lab/probe_attention_int8.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.probe_attention_int8 import main

if __name__ == "__main__":
    sys.exit(main())
