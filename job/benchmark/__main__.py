"""Worker entry point: ``python -m job.benchmark --worker IN.json OUT.json`` (internal)."""

import sys

from job.benchmark.measure import worker

sys.exit(worker(sys.argv[1:]))
