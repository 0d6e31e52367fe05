"""Probes: latent -> (x, y, vx, vy) read-outs reach their documented accuracy; saved without pickle."""

import numpy as np
import pytest

from jepa_mpc.errors import ConfigError
from jepa_mpc.probe import ProbeConfig, fit_probe, load_probe, save_probe


def _synthetic(n, seed):
    """States like TwoRoom's and a 32-d nonlinear latent of them (a stand-in for a frozen encoder)."""
    rng = np.random.default_rng(seed)
    s = np.concatenate([rng.uniform(-0.95, 0.95, (n, 2)), rng.normal(0, 0.4, (n, 2))], 1).astype(np.float32)
    w = np.random.default_rng(123).normal(0, 1.0, (4, 32)).astype(np.float32)
    return np.tanh(s @ w + 0.1).astype(np.float32), s


@pytest.mark.parametrize("kind,bound", [("mlp", 0.02), ("linear", 0.2)])
def test_probe_held_out_position_rmse_below_documented_bound(kind, bound):
    z_tr, s_tr = _synthetic(6000, 0)
    z_te, s_te = _synthetic(1000, 1)
    probe = fit_probe(z_tr, s_tr, z_te, s_te, ProbeConfig(kind=kind, steps=1500))
    assert probe.position_rmse < bound, probe.rmse
    assert set(probe.rmse) == {"x", "y", "vx", "vy"}
    pred = np.asarray(probe.apply(z_te))
    assert pred.shape == (1000, 4) and np.all(np.isfinite(pred))


def test_probe_save_load_round_trip_no_pickle(tmp_path):
    z, s = _synthetic(500, 0)
    probe = fit_probe(z, s, z, s, ProbeConfig(kind="linear"), meta={"step": 7})
    path = save_probe(tmp_path, probe)
    with np.load(path, allow_pickle=False) as f:  # plain arrays only
        assert "meta_json" in f
    back = load_probe(tmp_path)
    assert back.rmse == pytest.approx(probe.rmse) and back.meta["step"] == 7
    np.testing.assert_allclose(np.asarray(back.apply(z[:5])), np.asarray(probe.apply(z[:5])), rtol=1e-5)
    assert load_probe(tmp_path / "nothing") is None
    path.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="probe"):
        load_probe(tmp_path)


def test_read_out_slots_beyond_position_and_velocity_are_named_by_their_fields():
    from jepa_mpc.probe import slot_names

    assert slot_names(4) == ("x", "y", "vx", "vy")
    assert slot_names(6, ("bx", "by", "bvx", "bvy", "px", "py")) == ("x", "y", "vx", "vy", "px", "py")
    z, s = _synthetic(400, 0)
    wide = np.concatenate([s, s[:, :2] * 2], axis=1)
    probe = fit_probe(z, wide, z, wide, ProbeConfig(kind="linear"), meta={"state_fields": ["a", "b", "c", "d", "e", "f"]})
    assert list(probe.rmse) == ["x", "y", "vx", "vy", "e", "f"] and probe.apply(z[:3]).shape == (3, 6)
    # without a measured safety-point error the margin falls back to the position's
    assert probe.point_rmse == pytest.approx(probe.position_rmse)
    measured = type(probe)(probe.params, probe.mean, probe.std, probe.rmse, {**probe.meta, "point_rmse": 0.25})
    assert measured.point_rmse == 0.25
