"""iCEM (Pinneri et al. 2020, "Sample-efficient cross-entropy method for real-time planning").

CEM with three changes that spend fewer model evaluations for the same plan quality:

* coloured noise: the samples' deviations from the mean are temporally correlated along the horizon,
  with a power spectrum ~ 1/f^beta (beta = 0: white noise, CEM's; 2: their best), so a sample
  commits to a direction for several blocks instead of jittering;
* elite carry-over: a fraction of the previous iteration's elites is evaluated again among the new
  samples (the best sequence so far is never lost);
* a shrinking population: iteration i evaluates max(samples / shrink^i, 2 x elites) sequences.

The returned plan is the best sequence evaluated. Warm start: the paper also shifts the previous
plan's elites into the first iteration; through this interface only one sequence, ``init_actions``
(e.g. ``shift_plan`` of the previous plan), comes in, and it is the first mean and one of the first
samples (``include_mean``).

Population sizes are static per iteration, so the iterations are unrolled in Python where the size
changes and scanned (``lax.scan``) over runs of equal size: one jit per config.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jepa_mpc.errors import ConfigError
from jepa_mpc.planning import common


@dataclasses.dataclass(frozen=True)
class ICEMConfig(common.GaussianConfig):
    kind: ClassVar[str] = "icem"
    """Its name in PLANNERS and on the command line (planner:icem)."""

    elites: int = 30
    """Lowest-cost samples the Gaussian is refitted to."""
    beta: float = 2.0
    """Colour of the sampling noise along the horizon: power spectrum ~ 1/f^beta (0: white, as CEM)."""
    shrink: float = 1.25
    """Population decay per iteration (gamma): iteration i samples max(samples / shrink^i, 2 x elites)."""
    keep_fraction: float = 0.3
    """Fraction of the elites carried into the next iteration's samples (replacing fresh samples)."""


def validate(config: ICEMConfig) -> None:
    common.validate(config)
    common.check_noise(config)
    if not isinstance(config.elites, int) or not 0 < 2 * config.elites <= config.samples:
        raise ConfigError(f"ICEMConfig.elites must be in 1..samples/2={config.samples // 2} (the population "
                          f"shrinks to 2 x elites), got {config.elites}")
    if not config.shrink >= 1.0:
        raise ConfigError(f"ICEMConfig.shrink must be >= 1, got {config.shrink}")
    if not 0.0 <= config.keep_fraction <= 1.0:
        raise ConfigError(f"ICEMConfig.keep_fraction must be in [0, 1], got {config.keep_fraction}")
    if not 0.0 <= config.momentum < 1.0:
        raise ConfigError(f"ICEMConfig.momentum must be in [0, 1), got {config.momentum}")


def population_sizes(config: ICEMConfig) -> tuple[int, ...]:
    """Sequences evaluated at each iteration: samples, shrinking by `shrink`, never below 2 x elites."""
    floor = 2 * config.elites
    return tuple(max(floor, round(config.samples * config.shrink ** -i)) for i in range(config.iterations))


def model_evaluations(config: ICEMConfig) -> int:
    return sum(population_sizes(config))


def kept_elites(config: ICEMConfig) -> int:
    return round(config.keep_fraction * config.elites)


# ------------------------------------------------------------------------ coloured noise


def power_law_scale(horizon: int, beta: float) -> np.ndarray:
    """(horizon // 2 + 1,) amplitude per rfft bin, ~ f^(-beta / 2), scaled so that white noise of
    unit variance filtered by it keeps unit variance at every step. The zero frequency gets the
    lowest non-zero frequency's amplitude (1 / horizon), as in Timmer & Koenig's generator."""
    f = np.fft.rfftfreq(horizon)
    f[0] = 1.0 / horizon
    scale = f ** (-beta / 2.0)
    # Variance after filtering = mean over the full (two-sided) spectrum of scale^2: every rfft bin
    # stands for two bins, except the zero frequency and (even horizons) the Nyquist bin.
    counts = np.full(scale.shape, 2.0)
    counts[0] = 1.0
    if horizon % 2 == 0:
        counts[-1] = 1.0
    return scale / np.sqrt(np.sum(counts * scale**2) / horizon)


def coloured_noise(key: jax.Array, shape: tuple[int, ...], beta: float, kind: str = "hash") -> jax.Array:
    """Unit-variance Gaussian noise of `shape` (..., H, A) with power spectrum ~ 1/f^beta along axis -2
    (the horizon): white noise, FFT along the horizon, amplitudes scaled by f^(-beta/2), inverse FFT."""
    horizon = shape[-2]
    white = common.normal_noise(key, shape, kind)
    if beta == 0.0:
        return white
    scale = jnp.asarray(power_law_scale(horizon, beta), jnp.float32)[:, None]
    spectrum = jnp.fft.rfft(white, axis=-2) * scale
    return jnp.fft.irfft(spectrum, n=horizon, axis=-2).astype(jnp.float32)


# ------------------------------------------------------------------------------ planner


def _segments(sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    """(size, count) runs of equal consecutive sizes; the first iteration is always its own run (no
    elites to carry into it)."""
    runs = [(sizes[0], 1)]
    for size in sizes[1:]:
        if len(runs) > 1 and runs[-1][0] == size:
            runs[-1] = (size, runs[-1][1] + 1)
        else:
            runs.append((size, 1))
    return runs


def plan(cost_fn, init_actions, key, config: ICEMConfig = ICEMConfig()):
    """iCEM plan: ``(actions (H, A), info)``; see ``jepa_mpc.planning.common`` for the contract.
    ``info["population"]`` holds the sequences evaluated at each iteration."""
    validate(config)
    mean, std, min_std, low, high = common.gaussian_start(init_actions, config)
    costs_of = common.batch_cost(cost_fn)
    k, keep, m = config.elites, kept_elites(config), config.momentum
    sizes = population_sizes(config)

    def iteration(carry, key, size, carry_elites):
        mean, std, elites, best_a, best_c = carry
        noise = coloured_noise(key, (size,) + mean.shape, config.beta, config.noise)
        cand = jnp.clip(mean + std * noise, low, high)
        if config.include_mean:
            cand = cand.at[0].set(mean)
        if carry_elites and keep:
            cand = cand.at[size - keep :].set(elites[:keep])
        costs = costs_of(cand)
        neg_top, idx = jax.lax.top_k(-costs, k)
        new_elites = cand[idx]
        best_a, best_c = common.best_of(new_elites[:1], -neg_top[:1], best_a, best_c)
        mean = m * mean + (1 - m) * jnp.mean(new_elites, axis=0)
        std = jnp.maximum(m * std + (1 - m) * jnp.std(new_elites, axis=0), min_std)
        return (mean, std, new_elites, best_a, best_c), (best_c, -neg_top[0])

    keys = jax.random.split(key, config.iterations)
    carry = (mean, std, jnp.broadcast_to(mean, (k,) + mean.shape), mean, jnp.asarray(common.BIG, jnp.float32))
    best_hist, iter_best, start = [], [], 0
    for run, (size, count) in enumerate(_segments(sizes)):
        def step(carry, key, size=size, carry_elites=run > 0):
            return iteration(carry, key, size, carry_elites)

        if count == 1:
            carry, (best, it_best) = step(carry, keys[start])
            best, it_best = best[None], it_best[None]
        else:
            carry, (best, it_best) = jax.lax.scan(step, carry, keys[start : start + count])
        best_hist.append(best)
        iter_best.append(it_best)
        start += count
    _, std, _, best_a, best_c = carry
    info = {
        "best_cost": jnp.concatenate(best_hist), "iteration_best_cost": jnp.concatenate(iter_best),
        "final_std": std, "population": jnp.asarray(sizes, jnp.int32), "final_cost": best_c,
    }
    return common.project(best_a, low, high), info
