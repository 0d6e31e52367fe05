"""Planning costs: a weighted sum of named per-step terms.

A term is a pure function ``term(z_seq (H, D), a_seq (H, A), ctx) -> (H,)`` returning one
value per planning step, so reports can show which term dominated and at which step.
``ctx`` is a dict (a pytree) of task data given at planning time, e.g. ``{"goal": z_goal}``.

    cost = make_cost({"goal": (goal_distance(), 1.0), "effort": (action_magnitude(), 0.01)})
    cost.total(z_seq, a_seq, ctx)      -> scalar
    cost.breakdown(z_seq, a_seq, ctx)  -> {"goal": (H,), "effort": (H,)}   (weighted values)

Terms have a ``kind``: "cost" (minimised) or "constraint" (values are violations
``max(g(z_t), 0)`` of a constraint ``g(z_t) <= 0``; they are weighted and summed like any other
term, and ``Cost.violations`` counts the violated steps).

``latent_cost_fn`` turns a world-model rollout + a cost into the ``actions (H, A) -> scalar``
function the planners minimise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jepa_mpc.errors import ConfigError

Array = jax.Array
TermFn = Callable[[Array, Array, Mapping[str, Any]], Array]

TERM_KINDS = ("cost", "constraint")


@dataclasses.dataclass(frozen=True)
class Term:
    """A named-able per-step cost term: ``fn(z_seq, a_seq, ctx) -> (H,)`` plus its kind."""

    fn: TermFn
    kind: str = "cost"

    def __call__(self, z_seq: Array, a_seq: Array, ctx: Mapping[str, Any]) -> Array:
        return self.fn(z_seq, a_seq, ctx)


# ------------------------------------------------------------------------------ terms


def step_weights(horizon: int, mode: str = "terminal", discount: float = 1.0,
                 weights: Sequence[float] | Array | None = None) -> Array:
    """(H,) per-step weights: "terminal" (last step only) or "all" (``discount**t``, t = 0..H-1);
    explicit ``weights`` (length H) override both. Goal costs build theirs from these."""
    if weights is not None:
        if len(weights) != horizon:
            raise ConfigError(
                f"goal term: {len(weights)} step weights given for a horizon of {horizon} (field weights)"
            )
        return jnp.asarray(weights, jnp.float32)
    if mode not in ("terminal", "all"):
        raise ConfigError(f"step weights: unknown mode {mode!r}; expected 'terminal' or 'all'")
    if mode == "terminal":
        return jnp.zeros((horizon,), jnp.float32).at[-1].set(1.0)
    # "all": discount**t, t = 0..H-1
    return jnp.asarray(discount, jnp.float32) ** jnp.arange(horizon, dtype=jnp.float32)


def goal_distance(
    metric: str = "sq_l2",
    mode: str = "terminal",
    discount: float = 1.0,
    weights: Sequence[float] | Array | None = None,
    goal_key: str = "goal",
) -> Term:
    """Distance of each predicted latent to the encoded goal ``ctx[goal_key]`` (shape (D,)).

    metric: "sq_l2" (squared Euclidean) or "l2"; mode: "terminal" (only the last step counts)
    or "all" (every step, weighted by ``discount**t``); ``weights`` (length H) overrides both.
    """
    if metric not in ("sq_l2", "l2"):
        raise ConfigError(f"goal term: unknown metric {metric!r}; expected 'sq_l2' or 'l2' (field goal_metric)")
    if mode not in ("terminal", "all"):
        raise ConfigError(f"goal term: unknown mode {mode!r}; expected 'terminal' or 'all' (field mode)")

    def fn(z_seq: Array, a_seq: Array, ctx: Mapping[str, Any]) -> Array:
        sq = jnp.sum(jnp.square(z_seq - ctx[goal_key]), axis=-1)
        dist = sq if metric == "sq_l2" else jnp.sqrt(sq + 1e-12)
        return dist * step_weights(z_seq.shape[0], mode, discount, weights)

    return Term(fn)


def action_magnitude() -> Term:
    """Squared norm of each action, ``||a_t||^2``."""
    return Term(lambda z_seq, a_seq, ctx: jnp.sum(jnp.square(a_seq), axis=-1))


def action_smoothness(prev_key: str = "prev_action") -> Term:
    """Squared change between consecutive actions, ``||a_t - a_{t-1}||^2``.

    ``a_{-1}`` is ``ctx[prev_key]`` (the last executed action) when present, else ``a_0``.
    """

    def fn(z_seq: Array, a_seq: Array, ctx: Mapping[str, Any]) -> Array:
        prev0 = ctx[prev_key] if prev_key in ctx else a_seq[0]
        prev = jnp.concatenate([jnp.broadcast_to(prev0, a_seq[:1].shape), a_seq[:-1]], axis=0)
        return jnp.sum(jnp.square(a_seq - prev), axis=-1)

    return Term(fn)


def constraint(g: Callable[[Array, Mapping[str, Any]], Array]) -> Term:
    """Per-step violation ``max(g(z_t, ctx), 0)`` of a constraint ``g(z_t) <= 0``.

    ``g`` maps one latent (D,) (and ctx) to a scalar, e.g. a probe read-out of a hazard distance.
    """

    def fn(z_seq: Array, a_seq: Array, ctx: Mapping[str, Any]) -> Array:
        return jax.nn.relu(jax.vmap(lambda z: g(z, ctx))(z_seq))

    return Term(fn, kind="constraint")


# name -> constructor (keyword arguments only); `make_cost` accepts these names in place of terms.
TERMS: dict[str, Callable[..., Term]] = {
    "goal": goal_distance,
    "action_magnitude": action_magnitude,
    "action_smoothness": action_smoothness,
}


def make_term(name: str, **kwargs: Any) -> Term:
    """The term registered under ``name``; raises ConfigError for unknown names."""
    if name not in TERMS:
        raise ConfigError(f"unknown cost term {name!r}; expected one of: {', '.join(TERMS)}")
    return TERMS[name](**kwargs)


# ------------------------------------------------------------------------- composition


@dataclasses.dataclass(frozen=True)
class Cost:
    """A weighted sum of named terms (built by ``make_cost``)."""

    terms: tuple[tuple[str, Term, float], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.terms)

    def breakdown(self, z_seq: Array, a_seq: Array, ctx: Mapping[str, Any]) -> dict[str, Array]:
        """Weighted per-step values of every term: name -> (H,). Their total sum is ``total``."""
        return {name: weight * term(z_seq, a_seq, ctx) for name, term, weight in self.terms}

    def total(self, z_seq: Array, a_seq: Array, ctx: Mapping[str, Any]) -> Array:
        parts = self.breakdown(z_seq, a_seq, ctx)
        return sum((jnp.sum(v) for v in parts.values()), start=jnp.zeros((), jnp.float32))

    def violations(self, z_seq: Array, a_seq: Array, ctx: Mapping[str, Any]) -> dict[str, Array]:
        """For constraint terms: name -> number of steps with a positive violation."""
        return {
            name: jnp.sum(term(z_seq, a_seq, ctx) > 0)
            for name, term, _ in self.terms
            if term.kind == "constraint"
        }

    __call__ = total


def make_cost(terms: Mapping[str, tuple[Term | TermFn | str, float]]) -> Cost:
    """Compose ``{name: (term, weight)}`` into a ``Cost``.

    ``term`` is a ``Term``, a plain function ``(z_seq, a_seq, ctx) -> (H,)`` (kind "cost"), or the
    name of a registered term (``TERMS``) built with its defaults. Unknown names -> ConfigError.
    """
    if not terms:
        raise ConfigError("make_cost: no cost terms given")
    built = []
    for name, spec in terms.items():
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ConfigError(f"cost term {name!r}: expected a (term, weight) pair, got {spec!r}")
        term, weight = spec
        if isinstance(term, str):
            term = make_term(term)
        elif not isinstance(term, Term):
            if not callable(term):
                raise ConfigError(f"cost term {name!r}: {term!r} is not callable")
            term = Term(term)
        if term.kind not in TERM_KINDS:
            raise ConfigError(f"cost term {name!r}: unknown kind {term.kind!r}; expected one of {TERM_KINDS}")
        built.append((name, term, float(weight)))
    return Cost(tuple(built))


# ------------------------------------------------------------------ world model -> cost_fn


def expand_actions(actions: Array, action_repeat: int) -> Array:
    """(H, A) plan blocks -> (H * r, A) per-env-step actions (each block repeated r times)."""
    return jnp.repeat(actions, action_repeat, axis=0) if action_repeat > 1 else actions


def latent_cost_fn(
    rollout_fn: Callable[[Array, Array], Array],
    z0: Array,
    ctx: Mapping[str, Any],
    cost: Cost | Callable[[Array, Array, Mapping[str, Any]], Array],
    action_repeat: int = 1,
    latents: str = "block_end",
) -> Callable[[Array], Array]:
    """The planner's ``actions (H, A) -> scalar`` from a world model and a cost.

    ``rollout_fn(z0, actions (T, A)) -> z_seq (T, D)`` predicts one latent per action. With
    ``action_repeat = r`` every plan block is repeated r times (T = H * r); ``latents`` picks what
    the cost sees: "block_end" (every r-th latent, the one after each block; cost over H steps with
    the block actions) or "all" (all H * r latents with the per-step actions). For a model that
    takes one block action per step use ``action_repeat=1``.
    """
    if action_repeat < 1:
        raise ConfigError(f"action_repeat must be >= 1, got {action_repeat}")
    if latents not in ("block_end", "all"):
        raise ConfigError(f"unknown latents selection {latents!r}; expected 'block_end' or 'all'")

    def cost_fn(actions: Array) -> Array:
        steps = expand_actions(actions, action_repeat)
        z_seq = rollout_fn(z0, steps)
        if latents == "block_end":
            return cost(z_seq[action_repeat - 1 :: action_repeat], actions, ctx)
        return cost(z_seq, steps, ctx)

    return cost_fn
