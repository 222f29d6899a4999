"""The lab: benchmark runs, probes, the demo table and the real-client harnesses.

Apart from the job: nothing under ``job/`` imports this package. Its experiments
measure what the job publishes, through the clients users load it with.
"""
