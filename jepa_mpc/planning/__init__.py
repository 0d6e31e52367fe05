"""Planners over action sequences, one file each, one interface:

    actions, info = plan(cost_fn, init_actions, key, config)

``cost_fn``: (H, A) -> scalar (or ``batched(fn)``: (N, H, A) -> (N,)); ``init_actions``: (H, A),
e.g. ``shift_plan(previous_actions)``; ``config``: the planner's frozen dataclass, which also picks
the planner (its ``kind`` is the planner's name in ``PLANNERS``). ``info["best_cost"]`` is the best cost so far per iteration, ``info["final_cost"]``
the cost of the returned actions. Actions are always finite and inside the config's bounds.

Jit the caller once per configuration, e.g. one MPC step::

    @jax.jit
    def mpc_step(params, z0, goal, init, key):
        cost_fn = latent_cost_fn(partial(rollout, params), z0, {"goal": goal}, cost)
        return plan(cost_fn, init, key, CEMConfig())
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple, Union

import tyro

from jepa_mpc.errors import ConfigError
from jepa_mpc.planning import cem, cem_gd, gradient, icem, mppi, random_shooting
from jepa_mpc.planning.cem import CEMConfig
from jepa_mpc.planning.cem_gd import CEMGDConfig
from jepa_mpc.planning.common import BIG, batched, sanitize_costs, shift_plan
from jepa_mpc.planning.gradient import GradientConfig
from jepa_mpc.planning.icem import ICEMConfig
from jepa_mpc.planning.mppi import MPPIConfig
from jepa_mpc.planning.random_shooting import RandomShootingConfig


class Planner(NamedTuple):
    name: str
    plan: Callable[..., tuple[Any, dict]]
    config_cls: type
    validate: Callable[[Any], None]
    model_evaluations: Callable[[Any], int]


def _planner(module: Any, config_cls: type) -> Planner:
    return Planner(config_cls.kind, module.plan, config_cls, module.validate, module.model_evaluations)


# A new planner: a module with plan/validate/model_evaluations and a frozen config with a `kind`,
# one line here; it is then a `jepa-mpc eval planner:KIND` subcommand and in the conformance tests.
PLANNERS: dict[str, Planner] = {
    p.name: p
    for p in (
        _planner(cem, CEMConfig),
        _planner(mppi, MPPIConfig),
        _planner(gradient, GradientConfig),
        _planner(cem_gd, CEMGDConfig),
        _planner(random_shooting, RandomShootingConfig),
        _planner(icem, ICEMConfig),
    )
}
DEFAULT_PLANNER = "cem"

PlannerConfig = Union[tuple(Annotated[p.config_cls, tyro.conf.subcommand(p.name)] for p in PLANNERS.values())]  # noqa: UP007
"""Any planner's config, a tagged union: on the command line the subcommand `planner:KIND`, then
its fields as `--planner.FIELD` (e.g. `planner:mppi --planner.temperature 0.2`)."""


def get_planner(name: str) -> Planner:
    """The planner registered under ``name``; ConfigError for unknown names."""
    if name not in PLANNERS:
        raise ConfigError(f"unknown planner {name!r}; expected one of: {', '.join(PLANNERS)}")
    return PLANNERS[name]


def planner_for(config: Any) -> Planner:
    """The planner a config belongs to (exact type match: CEMGDConfig is not a CEMConfig here)."""
    for planner in PLANNERS.values():
        if type(config) is planner.config_cls:
            return planner
    raise ConfigError(f"{type(config).__name__} is not a planner config; expected one of: "
                      + ", ".join(p.config_cls.__name__ for p in PLANNERS.values()))


def make_config(name: str, **overrides: Any) -> Any:
    """Default config of planner ``name`` with ``overrides`` (unknown fields -> ConfigError); validated.

    When ``samples`` is overridden but ``elites`` is not, elites follow it (10 % of samples, at least
    1; CEM's default 30 of 300), and CEM+GD's ``gd_elites`` is capped at the elites.
    """
    planner = get_planner(name)
    fields = {f.name for f in dataclasses.fields(planner.config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"planner {name!r} has no option(s) {', '.join(unknown)}; options: {', '.join(sorted(fields))}")
    overrides = dict(overrides)
    if "elites" in fields and "samples" in overrides and "elites" not in overrides:
        samples = overrides["samples"]
        if isinstance(samples, int) and samples > 0:
            overrides["elites"] = max(1, round(0.1 * samples))
    if "gd_elites" in fields and "gd_elites" not in overrides and "elites" in overrides:
        default_gd = next(f.default for f in dataclasses.fields(planner.config_cls) if f.name == "gd_elites")
        if isinstance(overrides["elites"], int) and overrides["elites"] > 0:
            overrides["gd_elites"] = min(default_gd, overrides["elites"])
    config = planner.config_cls(**overrides)
    planner.validate(config)
    return config


def with_budget(config: Any, **budget: int | None) -> Any:
    """``config`` with the budget overrides that are not None (e.g. horizon, samples, iterations),
    rebuilt through ``make_config`` from its non-default fields: so elites follow samples unless
    they were set, and fields a planner lacks (a gradient planner has no elites) are left alone."""
    planner = planner_for(config)
    set_fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                  if getattr(config, f.name) != f.default}
    known = {f.name for f in dataclasses.fields(config)}
    overrides = {k: v for k, v in budget.items() if v is not None and k in known}
    return make_config(planner.name, **{**set_fields, **overrides})


def validate(config: Any) -> None:
    planner_for(config).validate(config)


def model_evaluations(config: Any) -> int:
    """Cost-function sequence evaluations one plan call makes (for equal-budget comparisons)."""
    return planner_for(config).model_evaluations(config)


def plan(cost_fn: Callable, init_actions: Any, key: Any, config: Any) -> tuple[Any, dict]:
    """Run the planner that ``config`` belongs to. Pure and jittable (config static)."""
    return planner_for(config).plan(cost_fn, init_actions, key, config)


__all__ = [
    "BIG", "PLANNERS", "DEFAULT_PLANNER", "Planner", "PlannerConfig", "CEMConfig", "MPPIConfig", "GradientConfig",
    "CEMGDConfig", "ICEMConfig", "RandomShootingConfig", "batched", "get_planner", "make_config", "model_evaluations",
    "plan", "planner_for", "sanitize_costs", "shift_plan", "validate", "with_budget",
]
