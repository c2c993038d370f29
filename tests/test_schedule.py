"""Snapshot schedules: one √-spaced segment, several segments (the paper's mirun_1), explicit steps."""

import numpy as np
import pytest

from conceptspace.errors import UserError
from conceptspace.schedule import snapshot_steps


def test_one_segment_is_the_papers_sqrt_spacing_plus_the_last_step():
    got = snapshot_steps(20000, 60, 500)
    assert got[:6] == [500, 594, 696, 807, 926, 1053] and got[20] == 3933 and got[-1] == 20000  # paper_setup §2.1
    assert len(got) == 60


def test_segments_give_the_mirun_1_schedule_and_explicit_steps_are_added():
    got = snapshot_steps(15000, segments=[{"count": 10, "start": 50, "end": 2400},
                                          {"count": 200, "start": 2500, "end": 15000}], steps=[77])
    first = [int(s) for s in np.linspace(np.sqrt(50), np.sqrt(2400), 10) ** 2]
    assert got[:11] == sorted([*first, 77]) and got[11] == 2500 and got[-1] == 15000
    assert len(got) == 211 and got == sorted(set(got))


@pytest.mark.parametrize("kwargs, field", [
    ({"segments": [{"count": 3, "start": 10, "end": 99999}]}, "segments[0].end"),
    ({"segments": [{"count": 3, "start": 10, "stop": 50}]}, "segments[0]: unknown keys"),
    ({"count": 3, "start": 10, "steps": [0]}, "train.snapshots.steps"),
    ({"count": 0, "start": 10}, "train.snapshots.count"),
])
def test_bad_schedules_name_the_field(kwargs, field):
    with pytest.raises(UserError, match=field.replace("[", r"\[").replace("]", r"\]")):
        snapshot_steps(1000, **kwargs)
