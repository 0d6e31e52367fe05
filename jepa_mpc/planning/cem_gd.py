"""CEM + gradient: run CEM, then refine its best elites with projected Adam; keep the best."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from jepa_mpc.errors import ConfigError
from jepa_mpc.planning import cem, common, gradient


@dataclasses.dataclass(frozen=True)
class CEMGDConfig(cem.CEMConfig):
    kind: ClassVar[str] = "cem-gd"
    """Its name in PLANNERS and on the command line (planner:cem-gd)."""

    gd_elites: int = 4
    """Best CEM elites refined by gradient descent."""
    gd_iterations: int = 10
    """Adam steps per refined elite."""
    learning_rate: float = 0.05
    """Adam step size, as a fraction of half the action range."""


def validate(config: CEMGDConfig) -> None:
    cem.validate(config)
    if not 0 < config.gd_elites <= config.elites:
        raise ConfigError(f"CEMGDConfig.gd_elites must be in 1..elites={config.elites}, got {config.gd_elites}")
    if config.gd_iterations < 0:
        raise ConfigError(f"CEMGDConfig.gd_iterations must be >= 0, got {config.gd_iterations}")


def model_evaluations(config: CEMGDConfig) -> int:
    return cem.model_evaluations(config) + config.gd_elites * (config.gd_iterations + 1)


def plan(cost_fn, init_actions, key, config: CEMGDConfig = CEMGDConfig()):
    validate(config)
    actions, info, elites = cem.run_cem(cost_fn, init_actions, key, config)
    if config.gd_iterations == 0:
        return actions, info
    low, high = common.bounds(config, actions.shape[-1])
    starts = jnp.concatenate([actions[None], elites[: config.gd_elites - 1]], axis=0)
    best_a, best_c, gd_hist = gradient.descend(
        cost_fn, starts, low, high, config.gd_iterations, config.learning_rate
    )
    i = jnp.argmin(best_c)
    better = best_c[i] < info["final_cost"]
    actions = jnp.where(better, common.project(best_a[i], low, high), actions)
    final = jnp.minimum(best_c[i], info["final_cost"])
    gd_hist = jnp.minimum(gd_hist, info["best_cost"][-1])
    info = dict(info, best_cost=jnp.concatenate([info["best_cost"], gd_hist]), final_cost=final)
    return actions, info
