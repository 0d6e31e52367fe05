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


@pytest.mark.parametrize("name", ["tworoom_hazards_hard_val", "tworoom_hazards_hard_test"])
def test_hard_hazard_suites_have_every_kind_and_a_path_with_clearance(name):
    from jepa_mpc_envs.geometry import door_points, in_any_hazard, room_of
    from jepa_mpc_envs.tworoom_tasks import HARD_KINDS, SAFE_CLEARANCE

    suite = load_suite(shipped_suite_path(name))
    assert len(suite) == 200
    by_kind = {k: [t for t in suite.tasks if f"-{k}-" in t.name] for k in HARD_KINDS}
    assert all(len(ts) == 40 for ts in by_kind.values()), {k: len(v) for k, v in by_kind.items()}
    for t in suite.tasks:
        grown = [Circle(h.center, h.radius + SAFE_CLEARANCE) for h in t.hazards]
        assert path_exists(suite.layout, grown, t.start, t.goal), t.name
    for t in by_kind["half-door"]:  # every one crosses the door, and its hazard covers part of the opening
        assert room_of(suite.layout, t.start[:2]) != room_of(suite.layout, t.goal[:2]), t.name
        covered = in_any_hazard(t.hazards, door_points(suite.layout)[1]).mean()
        assert 0.25 <= covered <= 0.8, (t.name, covered)
    assert all(len(t.hazards) == 2 for k in ("corridor", "gap") for t in by_kind[k])
    assert all(len(t.hazards) == 3 for t in by_kind["goal-ring"])
    for t in by_kind["near-start"]:  # the hazard's edge is 3-8 cm from the start
        h = t.hazards[0]
        edge = ((t.start[0] - h.center[0]) ** 2 + (t.start[1] - h.center[1]) ** 2) ** 0.5 - h.radius
        assert 0.029 <= edge <= 0.081, (t.name, edge)


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
