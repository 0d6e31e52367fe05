"""The MJX simulator backend (envs/mjx_rollout.py, `--sim-backend mjx`) against `mujoco.rollout`.

MJX and MuJoCo agree to ~1e-10 over hundreds of control steps, wall contacts included, where the contact
is well posed. TwoRoom's walls are frictionless contacts of the default pyramidal kind: with MuJoCo's
friction floor their constraint stiffness is ~1e11, the contact force is that times a residual below the
solver's tolerance, and the speed at which the agent leaves a wall it hit fast is arbitrary at that level
(MuJoCo itself moves by centimetres when a start moves by 1e-12). So TwoRoom is compared exactly up to
its first wall approach, loosely after it, and exactly through contacts with the walls declared
frictionless (condim 1). The equivalence tests need the optional extra `mjx` (CI installs only `.[dev]`);
the error and flag tests do not.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from jepa_mpc.data.collect import CollectArgs, collect
from jepa_mpc.data.policies import make_actions
from jepa_mpc.errors import ConfigError, DatasetError
from jepa_mpc_envs import mjx_rollout
from jepa_mpc_envs.base import mujoco
from jepa_mpc_envs.registry import PUSHT, REACHER, TWOROOM, TWOROOM_LAYOUTS
from jepa_mpc_envs.rollout import StateCollector

EPISODES, STEPS = 16, 250  # one padded shape for every TwoRoom rollout here (one compilation per model)
QPOS_TOL = 1e-8  # float64 both sides, no contact: seen ~1e-11
CONTACT_TOL = {"qpos": 1e-6, "qvel": 1e-4, "state": 1e-4}  # through contacts (solver tolerance 1e-8): seen 5e-8, 5e-6
PUSHT_TOL = {"qpos": 1e-5, "qvel": 1e-3, "state": 1e-3}  # frictional pushing of a spinning block: seen 2e-6 in qpos


@pytest.fixture(scope="module")
def mjx():
    """`mujoco.mjx`; the test is skipped without the optional extra `mjx` (pytest.importorskip, quietly)."""
    try:
        return mjx_rollout.import_mjx()
    except ConfigError as err:
        pytest.skip(str(err))


def rollouts(family, model, starts, actions) -> tuple[dict, dict]:
    """(mujoco.rollout arrays, MJX arrays) of the same open-loop rollouts."""
    with StateCollector(model, 5, env=family) as c:
        ref = c.run(starts, actions)
    with family.make_collector(model, 5, backend="mjx") as c:
        assert isinstance(c, mjx_rollout.MJXCollector)
        return ref, c.run(starts, actions)


def ou_rollout_inputs(family, seed: int = 0):
    layout = family.default_layout()
    rng = np.random.default_rng(seed)
    starts = family.sample_start_states(layout, rng, EPISODES)
    return starts, make_actions("ou", rng, EPISODES, STEPS, family.action_dim)  # fast: hits walls at ~0.8 m/s


def wall_gap(model, qpos, margin: float = 0.05) -> np.ndarray:
    """(E, T) distance (m) from the agent to the nearest wall, negative inside one; inf beyond `margin`
    (the contacts of a copy of the model with that much margin)."""
    m = copy.copy(model)
    m.geom_margin[:] = margin / 2  # a pair's margin is the sum of its two geoms'
    d = mujoco.MjData(m)
    out = np.full(qpos.shape[:2], np.inf)
    for e, t in np.ndindex(*out.shape):
        d.qpos[:] = qpos[e, t]
        mujoco.mj_forward(m, d)
        out[e, t] = min((c.dist for c in d.contact[: d.ncon]), default=np.inf)
    return out


@pytest.mark.slow  # MJX on CPU is slow to compile: `make test-slow`
def test_tworoom_states_match_up_to_the_first_wall_approach_and_stay_physical_after(mjx):
    model = TWOROOM.build_model(TWOROOM.default_layout())
    starts, actions = ou_rollout_inputs(TWOROOM)
    ref, out = rollouts(TWOROOM, model, starts, actions)
    assert out["state"].shape == ref["state"].shape == (EPISODES, STEPS + 1, 4)
    assert out["state"].dtype == np.float32 and out["qpos"].dtype == np.float64

    # 5 cm: more than a control step's travel at full speed (0.8 m/s x 0.05 s), so no contact before it
    approach = wall_gap(model, ref["qpos"]) < 0.05
    first = np.where(approach.any(1), approach.argmax(1), STEPS + 1)
    assert (first <= STEPS).sum() >= EPISODES // 2, "most episodes should reach a wall"
    assert (first > 10).any()
    for e, k in enumerate(first):
        np.testing.assert_allclose(out["qpos"][e, :k], ref["qpos"][e, :k], rtol=0, atol=QPOS_TOL)
        np.testing.assert_allclose(out["qvel"][e, :k], ref["qvel"][e, :k], rtol=0, atol=QPOS_TOL)

    # after it: a trajectory of the same system, not the same one (the bounces differ: MuJoCo reaches
    # 2.6 m/s, MJX 3.9 m/s here, from a 0.8 m/s approach), inside the walls as deep as MuJoCo goes (7 mm)
    assert np.isfinite(out["qpos"]).all() and np.isfinite(out["qvel"]).all()
    assert wall_gap(model, out["qpos"]).min() >= wall_gap(model, ref["qpos"]).min() - 2e-3
    speed = lambda a: np.linalg.norm(a["qvel"], axis=-1)  # noqa: E731
    assert speed(out).max() <= 2 * speed(ref).max()


@pytest.mark.slow  # MJX on CPU is slow to compile: `make test-slow`
def test_tworoom_matches_through_wall_contacts_when_they_are_well_posed(mjx):
    model = copy.copy(TWOROOM.build_model(TWOROOM.default_layout()))
    model.geom_condim[:] = 1  # the walls are frictionless: one normal constraint row instead of a pyramid
    starts, actions = ou_rollout_inputs(TWOROOM)
    ref, out = rollouts(TWOROOM, model, starts, actions)
    touching = wall_gap(model, ref["qpos"], margin=1e-3) < 1e-3
    assert touching.sum() >= 1000, "the rollouts should spend many steps against the walls"
    for key, tol in CONTACT_TOL.items():
        np.testing.assert_allclose(out[key], ref[key], rtol=0, atol=tol, err_msg=key)


@pytest.mark.slow  # MJX on CPU is slow to compile: `make test-slow`
def test_reacher_matches_mujoco_rollout(mjx):
    starts, actions = ou_rollout_inputs(REACHER, seed=1)
    ref, out = rollouts(REACHER, REACHER.build_model(REACHER.default_layout()), starts, actions)
    np.testing.assert_allclose(out["qpos"], ref["qpos"], rtol=0, atol=QPOS_TOL)
    np.testing.assert_allclose(out["qvel"], ref["qvel"], rtol=0, atol=1e-6)  # seen 2.7e-8


def contact_kinds(model, qpos) -> np.ndarray:
    """(E, T, 2) bool: the state has a sphere-box contact (pusher on block or wall), a box-box one (block on wall)."""
    box, sphere = int(mujoco.mjtGeom.mjGEOM_BOX), int(mujoco.mjtGeom.mjGEOM_SPHERE)
    d = mujoco.MjData(model)
    out = np.zeros(qpos.shape[:2] + (2,), bool)
    for e, t in np.ndindex(*qpos.shape[:2]):
        d.qpos[:] = qpos[e, t]
        mujoco.mj_forward(model, d)
        types = [{int(model.geom_type[g]) for g in c.geom} for c in d.contact[: d.ncon]]
        out[e, t] = [{sphere, box} in types, {box} in types]
    return out


@pytest.mark.slow
def test_pusht_matches_until_the_block_hits_a_wall(mjx):
    """Pusher-block contacts (with friction) agree; a block-wall contact is box-box, which MJX detects with
    other contact points than MuJoCo (seen: ~2 mm apart within a step in 3 of 16 episodes), so each episode
    is compared up to the control step in which its block first touches a wall (found in every physics step
    of the reference). Compiles ~30 s."""
    model = PUSHT.build_model(PUSHT.default_layout())
    starts, actions = ou_rollout_inputs(PUSHT, seed=1)
    ref, out = rollouts(PUSHT, model, starts, actions)
    with StateCollector(model, 1, env=PUSHT) as c:  # the same rollouts, every physics step kept
        fine = c.run(starts, np.repeat(actions, 5, axis=1))["qpos"]
    np.testing.assert_array_equal(fine[:, ::5], ref["qpos"])
    kinds = contact_kinds(model, fine)
    hit = kinds[..., 1]
    first = np.where(hit.any(1), -(-hit.argmax(1) // 5), STEPS + 1)  # the first control state after the hit
    assert (first > STEPS).sum() >= EPISODES // 2
    assert sum(kinds[e, : 5 * k, 0].sum() for e, k in enumerate(first)) >= 100, "many pusher contacts compared"
    for e, k in enumerate(first):
        for key, tol in PUSHT_TOL.items():
            np.testing.assert_allclose(out[key][e, :k], ref[key][e, :k], rtol=0, atol=tol, err_msg=f"{key} episode {e}")
    assert np.isfinite(out["qpos"]).all()


@pytest.mark.slow
def test_oracle_simulator_on_mjx_matches_mujoco(mjx):
    from jepa_mpc.control import mujoco_block_simulator

    model = REACHER.build_model(REACHER.default_layout())
    rng = np.random.default_rng(2)
    starts = REACHER.sample_start_states(REACHER.default_layout(), rng, 6)
    blocks = rng.uniform(-1, 1, (6, 4, 5 * 2))
    got = [mujoco_block_simulator(model, 5, 5, env=REACHER, backend=b)(starts, blocks) for b in ("mujoco", "mjx")]
    assert got[0].shape == got[1].shape == (6, 4, 5, REACHER.goal_dim + 4)
    np.testing.assert_allclose(got[1], got[0], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_episode_axis_is_sharded_over_several_devices(mjx):
    """4 forced CPU devices: the padded batch is split over them and the rows come back in order."""
    code = """
import numpy as np, jax
from jepa_mpc_envs.registry import REACHER
from jepa_mpc_envs.rollout import StateCollector
assert jax.local_device_count() == 4
m = REACHER.build_model(REACHER.default_layout())
rng = np.random.default_rng(0)
starts, actions = REACHER.sample_start_states(REACHER.default_layout(), rng, 5), rng.uniform(-1, 1, (5, 20, 2))
with REACHER.make_collector(m, 5, backend="mjx") as c:
    assert c.devices == 4
    out = c.run(starts, actions)
with StateCollector(m, 5, env=REACHER) as c:
    ref = c.run(starts, actions)
print(float(np.abs(out["qpos"] - ref["qpos"]).max()))
"""
    env = {**__import__("os").environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.strip().splitlines()[-1]) < QPOS_TOL


def test_padded_size_is_a_power_of_two_divisible_by_the_devices():
    assert [mjx_rollout.padded_size(n) for n in (1, 2, 3, 8, 9, 1000)] == [1, 2, 4, 8, 16, 1024]
    assert mjx_rollout.padded_size(1, devices=4) == 4
    assert mjx_rollout.padded_size(5, devices=3) == 9  # 8 -> a multiple of 3


# ---------------------------------------------------------------- datasets record the backend


def test_mjx_dataset_records_its_backend_and_resumes_only_with_it(mjx, tmp_path):
    args = dict(out=str(tmp_path / "d"), num_episodes=EPISODES, chunk_episodes=EPISODES, episode_len=STEPS)
    collect(CollectArgs(**args, sim_backend="mjx"), progress=False)
    meta = __import__("json").loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["config"]["sim_backend"] == "mjx" and meta["status"] == "complete"
    with pytest.raises(DatasetError, match="sim_backend='mjx', not 'mujoco'"):
        collect(CollectArgs(**args), progress=False)


def test_default_backend_is_left_out_of_the_dataset_meta(tmp_path):
    """Datasets (and experiment digests) from before the flag stay the same."""
    collect(CollectArgs(out=str(tmp_path / "d"), num_episodes=2, chunk_episodes=2, episode_len=3), progress=False)
    meta = __import__("json").loads((tmp_path / "d" / "meta.json").read_text())
    assert "sim_backend" not in meta["config"]


def test_default_backend_is_left_out_of_the_eval_identity():
    from jepa_mpc.evaluate import EvalArgs, identity_flags

    assert "sim_backend" not in identity_flags(EvalArgs())
    assert identity_flags(EvalArgs(dynamics="oracle", sim_backend="mjx"))["sim_backend"] == "mjx"


# ---------------------------------------------------------------- errors


def test_missing_mjx_is_a_one_line_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco.mjx", None)
    monkeypatch.delattr(mujoco, "mjx", raising=False)
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[mjx\]'"):
        mjx_rollout.import_mjx()
    with pytest.raises(ConfigError, match="--sim-backend mjx"):
        TWOROOM.make_collector(TWOROOM.build_model(TWOROOM.default_layout()), 5, backend="mjx")


def test_cli_without_mjx_exits_2_with_the_install_command(tmp_path):
    code = ("import sys; sys.modules['mujoco.mjx'] = None\n"
            "from jepa_mpc.cli import main\n"
            f"main(['collect', '--sim-backend', 'mjx', '--out', {str(tmp_path / 'd')!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert_one_line_error(proc, "pip install -e '.[mjx]'")
    assert not (tmp_path / "d").exists()  # refused before anything is written


@pytest.mark.parametrize("argv, needle", [
    (["collect", "--sim-backend", "warp"], "--sim-backend"),
    (["collect", "--sim-backend", "mjx", "--env", TWOROOM_LAYOUTS.env_id], "mujoco only"),
    (["bench", "collect", "--sim-backend", "nope"], "--sim-backend"),
    (["eval", "--sim-backend", "mjx"], "--dynamics oracle"),
], ids=["collect-unknown", "collect-room-per-row-family", "bench-unknown", "eval-without-oracle"])
def test_bad_sim_backend_flags_are_one_line(argv, needle, tmp_path):
    proc = run_cli(*argv, "--out", str(tmp_path / "out")) if argv[0] != "bench" else run_cli(*argv)
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "out").exists()


def test_families_without_an_mjx_collector_refuse_it():
    with pytest.raises(ConfigError, match=f"--sim-backend mjx: {TWOROOM_LAYOUTS.env_id} is simulated with mujoco only"):
        TWOROOM_LAYOUTS.make_collector(TWOROOM_LAYOUTS.build_model(TWOROOM_LAYOUTS.default_layout()), 5, backend="mjx")
    with pytest.raises(ConfigError, match="expected one of mujoco, mjx"):
        TWOROOM.check_sim_backend("warp")
