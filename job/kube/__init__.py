"""Kubernetes: the Jobs the compression job runs as, and the launcher that makes them.

* ``render``: pure rendering of ``batch/v1`` Jobs (and the template's values) from typed
  options; standard library, ``job.errors`` and ``job.config`` only;
* ``launch``: ``scripts/launch``: flags, checks with the job's own parsers, output;
* ``cluster``: ``--apply`` and ``--watch`` through the Kubernetes API (the only module
  that imports the kubernetes client).
"""
