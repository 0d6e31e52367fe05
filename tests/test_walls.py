"""The wall diagnostic (jepa_mpc/walls.py, `jepa-mpc inspect --walls`)."""

import shutil

import numpy as np
import pytest

from jepa_mpc import walls
from jepa_mpc_envs.geometry import AGENT_RADIUS, Layout, is_free
from jepa_mpc_envs.registry import get_family, load_suite

TWOROOM = "jepa_mpc_envs/TwoRoom-v0"


class _Model:
    obs_key, action_block = "state", 5


@pytest.mark.parametrize("layout", [Layout(), Layout(wall_axis="y", wall_pos=0.2, door_center=-0.4, door_width=0.25),
                                    Layout(wall_pos=0.75)])  # a wall near the edge: starts on its wide side
def test_wall_cases_start_near_the_wall_away_from_the_door_and_push_at_it(layout):
    frame = walls.WallFrame.of(layout)
    xy, a = walls.sample_wall_cases(frame, np.random.default_rng(0), 300, 0.15, AGENT_RADIUS)
    across, along = xy[:, frame.across], xy[:, 1 - frame.across]
    gap = np.abs(across - frame.wall) - frame.half_thickness - AGENT_RADIUS
    assert np.all((gap >= walls.WALL_DISTANCE[0] - 1e-9) & (gap <= walls.WALL_DISTANCE[1] + 1e-9))
    assert np.all(np.abs(along - frame.door_center) >= frame.door_half + 0.15 - 1e-9)
    assert np.all(is_free(layout, xy))
    # each action points across, at the wall
    np.testing.assert_allclose(a[:, frame.across], -np.sign(across - frame.wall))
    np.testing.assert_allclose(a[:, 1 - frame.across], 0.0)


def test_simulator_stops_wall_cases_and_open_cases_move_freely():
    family = get_family(TWOROOM)
    env = family.make_env()
    layout = Layout()
    frame = walls.WallFrame.of(layout)
    rng = np.random.default_rng(1)
    xy, a = walls.sample_wall_cases(frame, rng, 20, 0.15, AGENT_RADIUS)
    real = walls.simulate_blocks(env, np.c_[xy, np.zeros((20, 2))], a, 4, 5)
    assert real.shape == (20, 4, 2)
    assert np.all(frame.side(real) == frame.side(xy)[:, None])  # never through
    end_gap = np.abs(real[:, -1, 0] - frame.wall) - frame.half_thickness - AGENT_RADIUS
    assert np.all(end_gap < 0.01)  # pressed against the wall after 4 blocks at full thrust
    starts, oa = walls.sample_open_starts(layout, rng, 20, 0.1)
    assert np.all(walls._clearance(layout, starts) >= 0.1)
    moved = walls.simulate_blocks(env, np.c_[starts, np.zeros((20, 2))], oa, 2, 5)
    assert np.all(np.linalg.norm(moved[:, -1] - starts, axis=1) > 0.1)
    env.close()


def _diagnostic(monkeypatch, predict, suite="envs/tasks/tworoom_val.json", cases=40):
    monkeypatch.setattr(walls, "predict_positions", predict)
    family = get_family(load_suite(suite).env_id)
    return walls.wall_diagnostic(_Model(), None, family, load_suite(suite), 5, walls.WallProbeConfig(cases=cases))


def test_a_model_that_ignores_walls_crosses_them_and_the_simulator_does_not(monkeypatch):
    def ghost(model, probe, obs, actions, blocks):  # straight on at full speed: 0.2 m per block
        start = np.asarray(obs)[:, :2]
        steps = np.arange(1, blocks + 1)[None, :, None] * 0.2
        return start, start[:, None] + steps * np.asarray(actions)[:, None]

    d = _diagnostic(monkeypatch, ghost)
    assert d["wall_cases"] == 40 and d["wall_cases_crossed_by_simulator"] == 0
    assert d["wall_crossing_rate"] == 1.0 and d["wall_crossing_ci95"][0] > 0.9
    assert d["open_cases"] == 40
    assert d["wall_error_m"][-1] > d["open_error_m"][-1]  # the ghost is wrong only where walls stop the agent
    assert d["start_readout_error_m"] < 1e-6


def test_a_model_that_predicts_the_simulator_never_crosses(monkeypatch):
    family = get_family(TWOROOM)

    def exact(model, probe, obs, actions, blocks):
        env = family.make_env()
        states = np.asarray(obs)
        real = walls.simulate_blocks(env, states, actions, blocks, 5)
        env.close()
        return states[:, :2], real

    d = _diagnostic(monkeypatch, exact, cases=30)
    assert d["wall_crossings"] == 0 and d["wall_crossing_ci95"][1] < 0.15
    np.testing.assert_allclose(d["wall_error_m"], 0.0, atol=1e-6)
    np.testing.assert_allclose(d["open_error_m"], 0.0, atol=1e-6)


def test_rooms_of_a_layouts_suite_are_each_probed(monkeypatch):
    seen = []

    def record(model, probe, obs, actions, blocks):
        seen.append(np.asarray(obs))
        start = np.asarray(obs)[:, :2]
        return start, np.repeat(start[:, None], blocks, axis=1)

    d = _diagnostic(monkeypatch, record, "envs/tasks/tworoom_layouts_val.json", cases=40)
    assert d["rooms"] == 20 and d["wall_cases"] == 40
    rooms = {tuple(np.round(s[4:], 4)) for s in seen[0]}
    assert len(rooms) == 20  # two wall and two open cases in each room
    assert d["wall_crossings"] == 0  # standing still never crosses


def test_config_errors():
    with pytest.raises(walls.ConfigError, match="cases must be >= 1"):
        walls.validate_wall_config(walls.WallProbeConfig(cases=0))
    with pytest.raises(walls.ConfigError, match="door-clearance"):
        walls.validate_wall_config(walls.WallProbeConfig(door_clearance=float("nan")))
    family = get_family("jepa_mpc_envs/Reacher-v0")
    with pytest.raises(walls.ConfigError, match="no dividing wall"):
        walls.suite_rooms(family, load_suite("envs/tasks/reacher_val.json"))


def test_inspect_walls_on_the_tiny_run(tiny_run, tmp_path, cli, capsys):
    import json

    from jepa_mpc.diagnostics import InspectArgs, inspect_main
    from jepa_mpc.probe import ProbeArgs, probe_main
    from tests.conftest import assert_one_line_error

    _, run = tiny_run
    assert_one_line_error(cli("inspect", str(run), "--walls", "envs/tasks/tworoom_val.json"), "has no probe")
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    probe_main(ProbeArgs(run=str(mine)))
    for suite, cfg, msg in (("envs/tasks/reacher_val.json", walls.WallProbeConfig(), "suite is for"),
                            ("envs/tasks/tworoom_val.json", walls.WallProbeConfig(cases=0), "cases must be >= 1")):
        with pytest.raises(walls.ConfigError, match=msg):
            inspect_main(InspectArgs(run=str(mine), walls=suite, wall_probe=cfg))
    out = tmp_path / "inspect.json"
    inspect_main(InspectArgs(run=str(mine), walls="envs/tasks/tworoom_val.json", wall_probe=walls.WallProbeConfig(cases=20),
                             out=str(out)))
    assert "predicted rollouts through a wall" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["run"] == str(mine) and "git_commit" in saved and saved["step"] > 0
    w = saved["walls"]
    assert w["wall_cases"] == 20 and 0 <= w["wall_crossing_rate"] <= 1 and len(w["wall_error_m"]) == 4


def test_data_wall_stats_count_contacts_and_door_passages():
    family = get_family(TWOROOM)
    layout = Layout()
    at_wall = np.zeros((11, 4))
    at_wall[:, 0] = -(layout.wall_thickness / 2 + AGENT_RADIUS + 0.001)  # pressed against the wall's left face
    at_wall[:, 1] = 0.6
    through = np.zeros((11, 4))
    through[:, 0] = np.linspace(-0.5, 0.5, 11)  # along y = 0: through the door, once
    states = np.stack([at_wall, through, through[::-1]])
    d = walls.data_wall_stats(family, layout, states, np.array([10, 10, 4]))
    assert d["steps"] == 24 and d["episodes"] == 3
    assert d["wall_contact_steps_per_1k"] == pytest.approx(1000 * 10 / 24)
    assert d["edge_contact_steps_per_1k"] == 0.0
    assert d["door_crossings_per_episode"] == pytest.approx(1 / 3)  # the third episode stops before the door
