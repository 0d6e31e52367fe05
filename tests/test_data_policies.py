"""Exploration policies: shapes, bounds, determinism, temporal correlation."""

import numpy as np
import pytest

from jepa_mpc.data.policies import make_actions, ou_actions, uniform_actions
from jepa_mpc.errors import ConfigError


def _lag1_autocorr(a: np.ndarray) -> float:
    x = a - a.mean()
    return float((x[:, 1:] * x[:, :-1]).mean() / x.var())


@pytest.mark.parametrize("policy", ["ou", "uniform"])
def test_actions_shape_dtype_bounds_and_determinism(policy):
    a = make_actions(policy, np.random.default_rng(3), 16, 50)
    b = make_actions(policy, np.random.default_rng(3), 16, 50)
    c = make_actions(policy, np.random.default_rng(4), 16, 50)
    assert a.shape == (16, 50, 2) and a.dtype == np.float32
    assert np.all(np.isfinite(a)) and a.min() >= -1.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_ou_is_temporally_correlated_and_uniform_is_not():
    ou = ou_actions(np.random.default_rng(0), 64, 200)
    un = uniform_actions(np.random.default_rng(0), 64, 200)
    assert _lag1_autocorr(ou) > 0.8
    assert abs(_lag1_autocorr(un)) < 0.05
    # the OU process explores both signs on every action dimension
    assert (ou > 0.5).mean() > 0.1 and (ou < -0.5).mean() > 0.1


def test_ou_parameters_change_correlation():
    slow = ou_actions(np.random.default_rng(0), 64, 200, theta=0.2, sigma=0.5)
    fast = ou_actions(np.random.default_rng(0), 64, 200, theta=10.0, sigma=3.0)
    assert _lag1_autocorr(slow) > _lag1_autocorr(fast)


def test_bad_policy_and_parameters_are_user_errors():
    with pytest.raises(ConfigError, match="policy"):
        make_actions("brownian", np.random.default_rng(0), 2, 3)
    with pytest.raises(ConfigError, match="theta"):
        ou_actions(np.random.default_rng(0), 2, 3, theta=0.0)
