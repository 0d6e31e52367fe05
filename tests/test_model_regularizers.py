"""SIGReg / VICReg statistics behave as tests of Gaussianity / spread."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jepa_mpc.config import RegularizerConfig
from jepa_mpc.diagnostics import effective_rank, ridge_r2
from jepa_mpc.errors import ConfigError
from jepa_mpc.regularizers import epps_pulley, regularizer_loss, sigreg, vicreg


def test_sigreg_small_for_gaussian_large_for_collapsed():
    key = jax.random.key(0)
    g = jax.random.normal(key, (1024, 16))
    gauss = float(sigreg(g, jax.random.key(1)))
    collapsed = float(sigreg(jnp.zeros((1024, 16)), jax.random.key(1)))
    low_rank = float(sigreg(g[:, :1] * jnp.ones((1, 16)) / 4.0, jax.random.key(1)))
    scaled = float(sigreg(5.0 * g, jax.random.key(1)))
    assert gauss < 2.0  # O(1): N |phi_N - phi|^2 has expectation 1 - exp(-t^2) < 1
    assert collapsed > 100 * gauss and low_rank > 20 * gauss and scaled > 20 * gauss


def test_epps_pulley_grows_with_n_only_off_gaussian():
    key = jax.random.key(2)
    for n in (256, 4096):
        p = jax.random.normal(key, (n, 8))
        assert float(jnp.mean(epps_pulley(p))) < 2.0
    u_small = float(jnp.mean(epps_pulley(jax.random.uniform(key, (256, 8)))))
    u_large = float(jnp.mean(epps_pulley(jax.random.uniform(key, (4096, 8)))))
    assert u_large > 10 * u_small / 2


def test_sigreg_gradient_spreads_collapsed_embeddings():
    z = 0.01 * jax.random.normal(jax.random.key(0), (256, 4))
    g = jax.grad(lambda z: sigreg(z, jax.random.key(3), 32))(z)
    # gradient descent pushes points outward: -g is aligned with z
    assert float(jnp.sum(-g * z)) > 0


def test_vicreg_zero_for_whitened_positive_for_collapsed():
    z = jax.random.normal(jax.random.key(0), (4096, 8))
    assert float(vicreg(z)) < 0.5
    assert float(vicreg(jnp.zeros((64, 8)))) > 20.0


def test_unknown_regulariser_is_config_error():
    with pytest.raises(ConfigError, match="bogus"):
        regularizer_loss(RegularizerConfig(kind="bogus"), jnp.zeros((4, 2)), jax.random.key(0))
    assert float(regularizer_loss(RegularizerConfig(kind="none"), jnp.zeros((4, 2)), jax.random.key(0))) == 0.0


def test_effective_rank_and_ridge_r2():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 8))
    assert effective_rank(x) > 7.5
    assert effective_rank(np.outer(rng.normal(size=2000), np.ones(8))) < 1.1
    y = x[:, :2] @ np.array([[1.0, 2.0], [0.5, -1.0]])
    r2 = ridge_r2(x[:1000], y[:1000], x[1000:], y[1000:])
    assert np.all(r2 > 0.999)
