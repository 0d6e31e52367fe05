"""Anti-collapse regularisers on a batch of embeddings z (N, D).

- SIGReg (default): sketched Epps-Pulley test of the embedding distribution against the isotropic
  Gaussian N(0, I), along M random unit directions drawn fresh from the step's key. For a 1-D sample
  p_1..p_N with empirical characteristic function phi_N(t) = mean_n exp(i t p_n), the statistic is

      EP = N * integral |phi_N(t) - exp(-t^2/2)|^2 w(t) dt,     w(t) = exp(-t^2/2),

  computed with trapezoid quadrature on t in [0, t_max] (the integrand is even in t, so the
  half-line integral is doubled). EP is O(1) for Gaussian samples and O(N) for collapsed ones.
  SIGReg is the mean of EP over the M directions.
- VICReg: hinge on per-dimension std (target 1) + squared off-diagonal covariance.
- EMA target / none: no regulariser term (EMA acts through the stop-gradient target encoder).

Data parallel: every statistic here is a mean over samples. Pass `axis_name` when calling inside
`shard_map`/`pmap` over a batch axis: the sample means are then `pmean`-reduced over that axis and
N is the global batch size, so the value equals that of the whole global batch (the random
directions must then come from the same key on every device).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jepa_mpc.config import REGULARIZERS, RegularizerConfig
from jepa_mpc.errors import ConfigError


def _mean(x: jax.Array, axis: int, axis_name: str | None) -> jax.Array:
    m = jnp.mean(x, axis=axis)
    return m if axis_name is None else jax.lax.pmean(m, axis_name)


def _count(n: int, axis_name: str | None) -> jax.Array:
    return jnp.asarray(n, jnp.float32) if axis_name is None else jax.lax.psum(jnp.float32(n), axis_name)


def random_directions(key: jax.Array, dim: int, num: int) -> jax.Array:
    """(dim, num) unit-norm Gaussian directions."""
    a = jax.random.normal(key, (dim, num))
    return a / jnp.linalg.norm(a, axis=0, keepdims=True)


def _cos_sin_knots(p: jax.Array, dt: float, num_knots: int) -> tuple[jax.Array, jax.Array]:
    """cos(t_k p), sin(t_k p) for t_k = k dt, k = 0..K-1 -> two (..., K) arrays.

    Uses the angle-addition recurrence e^{i(k+1)x} = e^{ikx} e^{ix} (two trig calls per sample
    instead of 2K; trig dominates the cost of SIGReg on CPU). Error grows ~K ulp: negligible.
    """
    c1, s1 = jnp.cos(dt * p), jnp.sin(dt * p)
    cs, ss = [jnp.ones_like(p), c1], [jnp.zeros_like(p), s1]
    for _ in range(2, num_knots):
        c, s = cs[-1], ss[-1]
        cs.append(c * c1 - s * s1)
        ss.append(s * c1 + c * s1)
    return jnp.stack(cs[:num_knots], axis=-1), jnp.stack(ss[:num_knots], axis=-1)


def epps_pulley(
    p: jax.Array, num_knots: int = 17, t_max: float = 3.0, axis_name: str | None = None
) -> jax.Array:
    """Epps-Pulley statistic of each column of p (N, M) against N(0, 1) -> (M,)."""
    t = jnp.linspace(0.0, t_max, num_knots)
    dt = t_max / (num_knots - 1)
    trap = jnp.full((num_knots,), dt).at[0].set(dt / 2).at[-1].set(dt / 2)
    gauss = jnp.exp(-0.5 * t**2)
    weights = 2.0 * trap * gauss  # even integrand: twice the half line; w(t) = exp(-t^2/2)
    cos_tp, sin_tp = _cos_sin_knots(p, dt, num_knots)  # (N, M, K)
    re = _mean(cos_tp, 0, axis_name)  # (M, K): empirical characteristic function
    im = _mean(sin_tp, 0, axis_name)
    err = (re - gauss) ** 2 + im**2
    return _count(p.shape[0], axis_name) * (err @ weights)


def sigreg(
    z: jax.Array,
    key: jax.Array,
    num_projections: int = 256,
    num_knots: int = 17,
    t_max: float = 3.0,
    axis_name: str | None = None,
) -> jax.Array:
    """SIGReg of embeddings z (..., D) (all leading axes are samples): mean Epps-Pulley statistic."""
    z = z.reshape((-1, z.shape[-1])).astype(jnp.float32)
    dirs = random_directions(key, z.shape[-1], num_projections)
    return jnp.mean(epps_pulley(z @ dirs, num_knots, t_max, axis_name))


def vicreg(
    z: jax.Array, var_coeff: float = 25.0, cov_coeff: float = 1.0, axis_name: str | None = None
) -> jax.Array:
    """VICReg variance + covariance terms of z (..., D) (all leading axes are samples)."""
    z = z.reshape((-1, z.shape[-1])).astype(jnp.float32)
    d = z.shape[-1]
    mu = _mean(z, 0, axis_name)
    zc = z - mu
    cov = _mean(zc[:, :, None] * zc[:, None, :], 0, axis_name)  # (D, D)
    std = jnp.sqrt(jnp.diag(cov) + 1e-4)
    var_term = jnp.mean(jax.nn.relu(1.0 - std))
    off = cov - jnp.diag(jnp.diag(cov))
    cov_term = jnp.sum(off**2) / d
    return var_coeff * var_term + cov_coeff * cov_term


def check_regularizer(cfg: RegularizerConfig, where: str = "reg.kind") -> None:
    if cfg.kind not in REGULARIZERS:
        raise ConfigError(f"unknown regulariser {cfg.kind!r} ({where}); expected one of {REGULARIZERS}")
    if cfg.kind == "sigreg" and (cfg.num_projections < 1 or cfg.num_knots < 2 or cfg.t_max <= 0):
        raise ConfigError(f"{where}: sigreg needs num_projections >= 1, num_knots >= 2, t_max > 0")
    if cfg.kind == "ema" and not 0.0 <= cfg.ema_momentum < 1.0:
        raise ConfigError(f"reg.ema_momentum={cfg.ema_momentum}: must be in [0, 1)")


def regularizer_loss(
    cfg: RegularizerConfig, z: jax.Array, key: jax.Array, axis_name: str | None = None
) -> jax.Array:
    """The (unweighted) regulariser value for config `cfg` on embeddings z (..., D)."""
    check_regularizer(cfg)
    if cfg.kind == "sigreg":
        return sigreg(z, key, cfg.num_projections, cfg.num_knots, cfg.t_max, axis_name)
    if cfg.kind == "vicreg":
        return vicreg(z, cfg.vicreg_var_coeff, cfg.vicreg_cov_coeff, axis_name)
    return jnp.zeros((), jnp.float32)  # ema / none
