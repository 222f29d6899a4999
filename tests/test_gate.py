"""The accuracy gate at its boundary, with the job's default tolerance (``Job.gate_tolerance``):
a drop of 0.99 points passes, 1.01 fails, and a gain always passes."""

from __future__ import annotations

import pytest

from job.config import JobSection
from job.results import gate_passed

TOLERANCE = JobSection().gate_tolerance


def test_the_default_tolerance_is_one_point():
    assert TOLERANCE == 1.0


@pytest.mark.parametrize("before", [0.8512, 0.5, 0.0101, 1.0])
def test_a_drop_just_inside_the_tolerance_passes_and_just_outside_fails(before: float):
    assert gate_passed(before, before - 0.0099, TOLERANCE), "a 0.99-point drop is within 1 point"
    assert not gate_passed(before, before - 0.0101, TOLERANCE), "a 1.01-point drop is beyond 1 point"


@pytest.mark.parametrize("gain", [0.0, 0.0001, 0.0101, 0.25])
def test_a_gain_always_passes(gain: float):
    assert gate_passed(0.6, 0.6 + gain, TOLERANCE)
    assert gate_passed(0.6, 0.6 + gain, 0.0), "even a gate that allows no loss at all"


def test_a_negative_tolerance_demands_a_gain():
    assert not gate_passed(0.8, 0.8, -0.5)
    assert not gate_passed(0.8, 0.8049, -0.5)
    assert gate_passed(0.8, 0.8051, -0.5)
