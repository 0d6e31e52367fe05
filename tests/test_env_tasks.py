"""Task suites: schema validation errors, generator properties, save/load round trip, shipped files."""

import copy
import dataclasses
import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from jepa_mpc.errors import TaskFileError
from jepa_mpc_envs import geometry as G
from jepa_mpc.tasks_cli import TasksArgs, tasks_main
from jepa_mpc_envs.geometry import Box, Circle, Layout
from jepa_mpc_envs.registry import load_suite
from jepa_mpc_envs.suites import Suite, Task, save_suite, shipped_suite_path
from jepa_mpc_envs.tworoom_tasks import generate_suite

VALID = {
    "schema_version": 1,
    "env_id": "jepa_mpc_envs/TwoRoom-v0",
    "layout": Layout().to_dict(),
    "tasks": [
        {"name": "a", "start": [-0.5, 0.5], "goal": [0.5, 0.5, 0.0, 0.0], "tolerance": 0.1, "max_steps": 100},
        {
            "name": "b",
            "start": [-0.5, -0.5, 0.0, 0.0],
            "goal": [0.5, -0.5],
            "hazards": [
                {"type": "circle", "center": [0.0, -0.5], "radius": 0.1},
                {"type": "box", "lo": [0.2, 0.2], "hi": [0.4, 0.4]},
            ],
        },
    ],
}


def write(tmp_path, doc, name="suite.json"):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)


def test_valid_file_loads(tmp_path):
    s = load_suite(write(tmp_path, VALID))
    assert isinstance(s, Suite) and len(s) == 2 and s.layout == Layout()
    assert s.tasks[0].start == (-0.5, 0.5, 0.0, 0.0)  # [x, y] means zero velocity
    assert s.tasks[1].hazards == (Circle((0.0, -0.5), 0.1), Box((0.2, 0.2), (0.4, 0.4)))
    assert s.tasks[1].tolerance == 0.1 and s.tasks[1].max_steps == 200  # defaults


def mutate(path_fn):
    doc = copy.deepcopy(VALID)
    path_fn(doc)
    return doc


def _set(keys, value):
    def f(doc):
        d = doc
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return f


def _del(keys):
    def f(doc):
        d = doc
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]

    return f


# (case id, mutation, expected task index or None, expected field fragment)
CASES = [
    ("missing start", _del(["tasks", 1, "start"]), 1, "start"),
    ("missing tasks", _del(["tasks"]), None, "tasks"),
    ("unknown key", _set(["tasks", 0, "tolerence"], 0.2), 0, "tolerence"),
    ("wrong length", _set(["tasks", 1, "goal"], [0.5, 0.5, 0.0]), 1, "goal"),
    ("hazard center length", _set(["tasks", 1, "hazards", 0, "center"], [0.0]), 1, "hazards[0].center"),
    ("nan", _set(["tasks", 0, "start"], [float("nan"), 0.5]), 0, "start[0]"),
    ("inf tolerance", _set(["tasks", 0, "tolerance"], float("inf")), 0, "tolerance"),
    ("not a number", _set(["tasks", 0, "goal"], [0.5, "x"]), 0, "goal[1]"),
    ("start in wall", _set(["tasks", 0, "start"], [0.0, 0.6]), 0, "start"),
    ("goal in wall", _set(["tasks", 1, "goal"], [0.03, -0.6]), 1, "goal"),
    ("start outside arena", _set(["tasks", 0, "start"], [1.2, 0.5]), 0, "start"),
    ("goal outside arena", _set(["tasks", 0, "goal"], [0.5, 0.98]), 0, "goal"),
    ("start in hazard", _set(["tasks", 1, "start"], [0.3, 0.3]), 1, "start"),
    ("goal in hazard", _set(["tasks", 1, "goal"], [0.05, -0.5]), 1, "goal"),
    ("zero radius", _set(["tasks", 1, "hazards", 0, "radius"], 0.0), 1, "hazards[0].radius"),
    ("negative radius", _set(["tasks", 1, "hazards", 0, "radius"], -0.2), 1, "hazards[0].radius"),
    ("box lo >= hi", _set(["tasks", 1, "hazards", 1, "hi"], [0.2, 0.5]), 1, "hazards[1].lo"),
    ("unknown hazard type", _set(["tasks", 1, "hazards", 0, "type"], "blob"), 1, "hazards[0].type"),
    ("unknown env id", _set(["env_id"], "Foo-v0"), None, "env_id"),
    ("door closed", _set(["tasks", 1, "hazards", 0], {"type": "circle", "center": [0, 0], "radius": 0.2}), 1, "hazards"),
    ("zero tolerance", _set(["tasks", 0, "tolerance"], 0), 0, "tolerance"),
    ("bad max_steps", _set(["tasks", 0, "max_steps"], 1.5), 0, "max_steps"),
    ("bad layout", _set(["layout", "door_width"], 0.05), None, "layout.door_width"),
    ("bad schema version", _set(["schema_version"], 2), None, "schema_version"),
    ("duplicate name", _set(["tasks", 1, "name"], "a"), 1, "name"),
    ("too fast", _set(["tasks", 0, "start"], [-0.5, 0.5, 9.0, 0.0]), 0, "start"),
    ("zero speed limit", _set(["tasks", 0, "speed_limit"], 0.0), 0, "speed_limit"),
    ("nan speed limit", _set(["tasks", 0, "speed_limit"], float("nan")), 0, "speed_limit"),
    ("start above speed limit", lambda d: d["tasks"][0].update(start=[-0.5, 0.5, 0.4, 0.0], speed_limit=0.3), 0, "start"),
    ("keep_in lo >= hi", _set(["tasks", 0, "keep_in"], {"lo": [0.0, 0.0], "hi": [-1.0, 1.0]}), 0, "keep_in.lo"),
    ("keep_in unknown key", _set(["tasks", 0, "keep_in"], {"lo": [-1, -1], "hi": [1, 1], "x": 1}), 0, "keep_in.x"),
    ("start outside keep_in", _set(["tasks", 0, "keep_in"], {"lo": [0.0, 0.0], "hi": [0.9, 0.9]}), 0, "start"),
    # the keep-in box holds start and goal, but a hazard fills its width: no safe path
    ("no safe path", lambda d: d["tasks"][1].update(keep_in={"lo": [-0.9, -0.62], "hi": [0.9, -0.38]}), 1, "hazards"),
]


@pytest.mark.parametrize("case,mut,index,field", CASES, ids=[c[0] for c in CASES])
def test_validation_errors_name_file_task_field(tmp_path, case, mut, index, field):
    path = write(tmp_path, mutate(mut))
    with pytest.raises(TaskFileError) as exc:
        load_suite(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(path)
    if index is not None:
        assert f"task {index} " in msg
    assert f"field '{field}'" in msg, msg


def test_speed_limit_and_keep_in_round_trip_and_count_as_violations(tmp_path):
    from jepa_mpc_envs.tworoom import TwoRoomEnv

    doc = mutate(lambda d: d["tasks"][0].update(speed_limit=0.3, keep_in={"lo": [-0.9, -0.3], "hi": [0.9, 0.7]}))
    suite = load_suite(write(tmp_path, doc))
    task = suite.tasks[0]
    assert task.speed_limit == 0.3 and task.keep_in == Box((-0.9, -0.3), (0.9, 0.7))
    assert load_suite(save_suite(suite, tmp_path / "again.json")).tasks == suite.tasks
    assert suite.tasks[1].speed_limit is None and suite.tasks[1].keep_in is None  # optional
    env = TwoRoomEnv(suite.layout)
    _, info = env.reset(options={"task": task})
    assert not info["violation"]
    for _ in range(10):  # full thrust right: speed passes 0.3 m/s within a few steps
        _, _, _, _, info = env.step(np.array([1.0, 0.0]))
    assert np.hypot(*info["state"][2:]) > 0.3 and info["violation"]
    env.reset(options={"task": dataclasses.replace(task, speed_limit=None, start=(-0.5, -0.25, 0.0, 0.0))})
    flags = []
    for _ in range(10):  # full thrust down: leaves the keep-in band y >= -0.3
        _, _, _, _, info = env.step(np.array([0.0, -1.0]))
        flags.append((info["state"][1] < -0.3, info["violation"]))
    assert all(out == viol for out, viol in flags) and flags[-1][0]


def test_invalid_json_and_missing_file(tmp_path):
    path = write(tmp_path, '{"env_id": "jepa_mpc_envs/TwoRoom-v0", "tasks": [}')
    with pytest.raises(TaskFileError, match="invalid JSON at line 1") as exc:
        load_suite(path)
    assert str(exc.value).startswith(path)
    with pytest.raises(TaskFileError, match="cannot read"):
        load_suite(str(tmp_path / "nope.json"))


@pytest.mark.parametrize("hazards", ["none", "line", "door", "mixed"])
def test_generated_suite_properties(hazards):
    s = generate_suite(seed=7, n=20, hazards=hazards)
    L = s.layout
    assert len(s) == 20 and len({t.name for t in s.tasks}) == 20
    assert s.door_crossing_fraction() >= 0.5
    for t in s.tasks:
        assert t.start[2:] == (0.0, 0.0) and t.goal[2:] == (0.0, 0.0)
        for p in (t.start[:2], t.goal[:2]):
            assert G.is_free(L, p) and not G.in_any_hazard(t.hazards, p)
        assert not G.door_blocked_by(t.hazards, L)
        assert len(t.hazards) == (0 if hazards == "none" else 1)
        if t.hazards:
            assert G.path_exists(L, t.hazards, t.start, t.goal)
    if hazards == "line":  # the hazard sits on the straight start-goal segment
        for t in s.tasks:
            a, b, c = np.array(t.start[:2]), np.array(t.goal[:2]), np.array(t.hazards[0].center)
            u = np.dot(c - a, b - a) / np.dot(b - a, b - a)
            assert 0.2 < u < 0.8 and np.linalg.norm(a + u * (b - a) - c) < 1e-3
    if hazards == "door":  # near the door
        for t in s.tasks:
            c = np.array(t.hazards[0].center)
            assert np.linalg.norm(c - np.array([L.wall_pos, L.door_center])) < 0.45


def test_generator_deterministic_and_seeded():
    a, b, c = generate_suite(3, 10, hazards="line"), generate_suite(3, 10, hazards="line"), generate_suite(4, 10)
    assert a == b and a.tasks != c.tasks


def test_round_trip_and_atomic_save(tmp_path):
    s = generate_suite(11, 12, hazards="mixed", tolerance=0.15, max_steps=150)
    path = save_suite(s, tmp_path / "sub" / "s.json")
    loaded = load_suite(path)
    assert loaded.tasks == s.tasks and loaded.layout == s.layout and loaded.path == path
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["s.json"]  # no temp files left
    assert loaded.tasks[0].tolerance == 0.15 and loaded.tasks[0].max_steps == 150


def test_generated_suite_other_layout(tmp_path):
    L = Layout(wall_axis="y", wall_pos=0.2, door_center=0.3, door_width=0.35)
    s = generate_suite(5, 10, layout=L, hazards="door")
    assert s.door_crossing_fraction() >= 0.5
    assert load_suite(save_suite(s, tmp_path / "s.json")).layout == L


def test_tasks_main_cli(tmp_path, capsys):
    out = str(tmp_path / "t.json")
    tasks_main(TasksArgs(seed=1, n=10, hazards="line", out=out))
    text = capsys.readouterr().out
    assert "10 tasks" in text and "door crossing" in text
    assert len(load_suite(out)) == 10
    tasks_main(TasksArgs(check=out))
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("name,n_hazards", [("tworoom_heldout", 0), ("tworoom_hazards", 200)])
def test_shipped_suites_load(name, n_hazards):
    s = load_suite(shipped_suite_path(name))
    assert len(s) == 200 and s.door_crossing_fraction() >= 0.5
    assert sum(len(t.hazards) for t in s.tasks) == n_hazards
    assert all(t.tolerance == 0.1 and t.max_steps == 200 for t in s.tasks)


def test_shipped_suites_match_generator():
    assert load_suite(shipped_suite_path("tworoom_heldout")).tasks == generate_suite(1000, 200, stream="legacy").tasks
    assert load_suite(shipped_suite_path("tworoom_hazards")).tasks == generate_suite(2000, 200, hazards="mixed", stream="legacy").tasks


def test_env_runs_a_suite_task():
    from jepa_mpc_envs.tworoom import TwoRoomEnv

    s = load_suite(shipped_suite_path("tworoom_hazards"))
    env = TwoRoomEnv(layout=s.layout, obs_type="pixels")
    for t in s.tasks[:3]:
        obs, info = env.reset(options={"task": t})
        assert obs.shape == (64, 64, 3) and not info["violation"] and not info["success"]
        assert isinstance(t, Task) and env.hazards == t.hazards
