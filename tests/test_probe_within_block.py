"""The within-block read-out: read-outs at every env step of a predicted block, from its ends and its actions."""

import jax.numpy as jnp
import numpy as np
import pytest

from jepa_mpc.probe import ProbeConfig, apply_within_block, fit_probe, fit_within_block, load_probe, save_probe


def _point_mass(episodes, steps, seed, dt=0.05, damping=0.5):
    """Episodes of a damped 2-d point mass under random accelerations: read-outs (E, T+1, 4), actions (E, T, 2)."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (episodes, steps, 2))
    r = np.zeros((episodes, steps + 1, 4))
    r[:, 0, :2] = rng.uniform(-0.5, 0.5, (episodes, 2))
    for t in range(steps):
        pos, vel = r[:, t, :2], r[:, t, 2:]
        vel = vel + dt * (actions[:, t] - damping * vel)
        r[:, t + 1] = np.concatenate([pos + dt * vel, vel], axis=1)
    return r, actions


def test_within_block_read_out_recovers_inner_steps_a_straight_line_misses():
    r, a = _point_mass(200, 40, 0)
    held = np.arange(200) >= 180
    (w, b), info = fit_within_block(r, a, 5, held, ("x", "y", "vx", "vy"))
    assert w.shape == (4 + 4 + 5 * 2, 4 * 4) and b.shape == (16,)
    assert info["block"] == 5 and set(info["rmse"]) == {"x", "y", "vx", "vy"}
    # linear dynamics: the inner steps are a linear function of the ends and the actions
    assert max(info["rmse"].values()) < 1e-4 < min(info["line_rmse"].values())

    # a block that accelerates and brakes back: its ends are at rest, its middle is not
    accel = np.array([[1.0, 0.0]] * 2 + [[0.0, 0.0]] + [[-1.0, 0.0]] * 2)
    start = np.zeros(4)
    seq = [start]
    for act in accel:
        pos, vel = seq[-1][:2], seq[-1][2:]
        vel = vel + 0.05 * (act - 0.5 * vel)
        seq.append(np.concatenate([pos + 0.05 * vel, vel]))
    seq = np.stack(seq)
    steps = np.asarray(apply_within_block((jnp.asarray(w), jnp.asarray(b)), jnp.asarray(start, jnp.float32),
                                          jnp.asarray(seq[-1:], jnp.float32), jnp.asarray(accel.reshape(1, -1), jnp.float32)))
    assert steps.shape == (1, 5, 4)
    np.testing.assert_allclose(steps[0, -1], seq[-1], atol=1e-6)  # the block's end is the predicted end
    np.testing.assert_allclose(steps[0], seq[1:], atol=1e-4)
    peak = np.abs(steps[0, :, 2]).max()
    assert peak > 0.09 > 10 * max(abs(seq[0, 2]), abs(seq[-1, 2]))  # the inner peak the ends do not show


def test_within_block_read_out_round_trips_with_the_probe(tmp_path):
    r, a = _point_mass(40, 20, 2)
    held = np.arange(40) >= 35
    within, info = fit_within_block(r, a, 4, held, ("x", "y", "vx", "vy"))
    z = np.tanh(r.reshape(-1, 4) @ np.random.default_rng(0).normal(size=(4, 16))).astype(np.float32)
    probe = fit_probe(z, r.reshape(-1, 4), z, r.reshape(-1, 4), ProbeConfig(kind="linear"),
                      meta={"step": 1, "within_block": info})
    probe = type(probe)(probe.params, probe.mean, probe.std, probe.rmse, probe.meta, within)
    assert probe.within_block == 4
    back = load_probe(save_probe(tmp_path, probe).parent)
    assert back.within_block == 4
    np.testing.assert_array_equal(back.within[0], within[0])
    assert "within" in back.arrays() and "within" not in fit_probe(z, r.reshape(-1, 4), z, r.reshape(-1, 4),
                                                                    ProbeConfig(kind="linear")).arrays()


def test_within_block_read_out_needs_held_out_and_training_episodes():
    from jepa_mpc.errors import ConfigError

    r, a = _point_mass(5, 10, 3)
    with pytest.raises(ConfigError, match="within-block"):
        fit_within_block(r, a, 5, np.zeros(5, bool), ("x", "y", "vx", "vy"))
