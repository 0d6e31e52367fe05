"""The shipped hazard suite is solvable safely; bad hazard input is rejected with one line."""

import json

import pytest

from jepa_mpc.errors import TaskFileError
from jepa_mpc_envs.geometry import Circle, path_exists
from jepa_mpc_envs.registry import load_suite
from jepa_mpc_envs.suites import shipped_suite_path
from jepa_mpc_envs.tworoom_tasks import suite_from_dict


def test_every_hazard_task_has_a_safe_path():
    suite = load_suite(shipped_suite_path("tworoom_hazards"))
    assert len(suite) == 200
    kinds = {t.name.split("-")[2] for t in suite.tasks}
    assert kinds == {"line", "door"}
    for t in suite.tasks:
        assert path_exists(suite.layout, t.hazards, t.start, t.goal), t.name
    # with the discs grown by the planner's margin (~4 cm) a path exists for all but 2 tasks, whose start
    # or goal lies within that margin of the hazard (line-0027, line-0084): known, documented
    grown = [t.name for t in suite.tasks
             if not path_exists(suite.layout, [Circle(h.center, h.radius + 0.03) for h in t.hazards], t.start, t.goal)]
    assert len(grown) <= 2, grown


@pytest.mark.parametrize("hazard,field", [
    ({"type": "circle", "center": [0.5, float("nan")], "radius": 0.1}, "center"),
    ({"type": "circle", "center": [0.5, 0.5], "radius": float("inf")}, "radius"),
    ({"type": "box", "lo": [0.2, 0.2], "hi": [float("nan"), 0.4]}, "hi"),
    ({"type": "circle", "center": [-0.5, 0.0], "radius": 0.2}, "start"),  # start inside the hazard
    ({"type": "circle", "center": [0.0, 0.0], "radius": 0.3}, "hazards"),  # closes the door
])
def test_bad_hazards_rejected(hazard, field):
    doc = {"env_id": "jepa_mpc_envs/TwoRoom-v0",
           "tasks": [{"start": [-0.5, 0.0], "goal": [0.5, 0.5], "hazards": [hazard]}]}
    doc = json.loads(json.dumps(doc))  # NaN/inf as the JSON reader produces them
    with pytest.raises(TaskFileError, match=field) as err:
        suite_from_dict(doc, "t.json")
    assert "\n" not in str(err.value)
