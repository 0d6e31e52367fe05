"""Safety by construction: per-step constraints from task files, and how planners handle them.

Constraints are given only at plan time (task files); the world model never saw hazards. Each
is a per-step function ``g(state_t) <= 0`` of physical quantities, read from every predicted latent
by a probe (``jepa_mpc.probe``), or taken from the true simulator for the oracle. What is read is the
family's *safety read-out* (its position and velocity fields unless it declares ``safety_fields``),
which its ``safety_geometry`` turns into points in the plane the hazards are stated in and speeds
(TwoRoom: the agent's centre and speed; Reacher: the fingertip, by forward kinematics, and each
joint's speed; Push-T: the block's centre and ends and the pusher, and their speeds):

* ``circles``: keep-out discs, ``g = max_j,p (r_j + margin - ||p - c_j||)``,
* ``boxes``: keep-out boxes, ``g = max_j,p (margin - sdf_j(p))`` (sdf < 0 inside the box),
* ``keep_in``: keep every point in the task's keep-in box (default: the arena square), ``g = max_p sdf(p) + margin``,
* ``speed``: ``g = max_s speed_s - speed_limit`` (the task's limit, or the planner's if lower; off when none).

Hazards vary per episode, so they travel in ``ctx`` as fixed-size padded arrays (``hazard_arrays``:
up to ``MAX_CIRCLES`` circles and ``MAX_BOXES`` boxes, with masks), and one jitted, vmapped planner
serves every episode of a batch.

Every predicted step is checked, not only the terminal one: the model predicts one latent per
block of ``action_block`` env steps, so between two predicted block ends the path is checked at
``interp`` points linearly interpolated between consecutive predicted read-outs;
``g`` per block is the maximum over those points. The oracle checks every env step's true state.

A planning *objective* is ``objective(actions) -> (cost (), g (H, C), path (H, 2))`` (path: the first point);
``plan_safely`` applies one of the handling modes (``SAFETY_MODES``):

* ``"none"``: the cost only (the constraints are still evaluated on the chosen plan and reported),
* ``"penalty"``: ``cost + weight * sum_t sum_c max(g, 0)``,
* ``"constrained"``: lexicographic ranking as in constrained CEM: any feasible plan (no predicted
  violation) ranks before any infeasible one; feasible plans by cost, infeasible ones by total
  violation. Encoded in one scalar, ``cost + [v > 0] (RANK_OFFSET + RANK_SCALE * v)``, valid for
  costs below ``RANK_OFFSET`` (goal costs here are < 100), so every planner can use it unchanged,
* ``"auglag"``: augmented Lagrangian around any planner (meant for gradient / CEM+GD): ``rounds``
  outer rounds, each a planner call on ``cost + sum psi(g, lambda, rho)`` warm-started from the
  previous round, then ``lambda <- max(0, lambda + rho g)``, ``rho <- growth * rho``; the best plan
  over rounds (feasible first) is returned.

Whatever the mode, when no feasible plan is found the least-violating one is acted on and the
plan is flagged ``infeasible`` (counted per episode by ``run_mpc``): never a silent violation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jepa_mpc.errors import ConfigError
from jepa_mpc_envs.geometry import Box, Circle

MAX_CIRCLES = 8
MAX_BOXES = 8
CONSTRAINTS = ("circles", "boxes", "keep_in", "speed")
SAFETY_MODES = ("none", "penalty", "constrained", "auglag")
RANK_OFFSET = 1e4
RANK_SCALE = 1e3
_INACTIVE = -10.0  # g of a padded (absent) hazard: always satisfied
AGENT_RADIUS = 0.05


# ---------------------------------------------------------------------------- hazard arrays


def hazard_arrays(tasks: Sequence[Any], layouts: Sequence[Any] | Any, speed_limit: float = 0.0,
                  max_circles: int = MAX_CIRCLES, max_boxes: int = MAX_BOXES) -> dict[str, np.ndarray]:
    """Padded per-episode constraint data (numpy, leading axis = episode) for ``ctx``.

    circles (B, Mc, 3) = (cx, cy, r), circle_mask (B, Mc); boxes (B, Mb, 4) = (lo_x, lo_y, hi_x, hi_y),
    box_mask (B, Mb); keep_in (B, 4) box (the task's ``keep_in`` within the arena); speed (B,) limit
    (the lower of the task's ``speed_limit`` and ``speed_limit``; inf: none).
    """
    b = len(tasks)
    if not isinstance(layouts, (list, tuple)):
        layouts = [layouts] * b
    out = {
        "circles": np.zeros((b, max_circles, 3), np.float32),
        "circle_mask": np.zeros((b, max_circles), np.float32),
        "boxes": np.zeros((b, max_boxes, 4), np.float32),
        "box_mask": np.zeros((b, max_boxes), np.float32),
        "keep_in": np.array([(-lay.arena_half, -lay.arena_half, lay.arena_half, lay.arena_half)
                             for lay in layouts], np.float32),
        "speed": np.full((b,), speed_limit if speed_limit and speed_limit > 0 else np.inf, np.float32),
    }
    for i, task in enumerate(tasks):
        keep_in = getattr(task, "keep_in", None)
        if keep_in is not None:
            out["keep_in"][i, :2] = np.maximum(out["keep_in"][i, :2], keep_in.lo)
            out["keep_in"][i, 2:] = np.minimum(out["keep_in"][i, 2:], keep_in.hi)
        if getattr(task, "speed_limit", None):
            out["speed"][i] = min(out["speed"][i], task.speed_limit)
        circles = [h for h in task.hazards if isinstance(h, Circle)]
        boxes = [h for h in task.hazards if isinstance(h, Box)]
        if len(circles) > max_circles or len(boxes) > max_boxes:
            raise ConfigError(f"task {task.name!r}: {len(circles)} circles / {len(boxes)} boxes, at most "
                              f"{max_circles} / {max_boxes} are supported per episode")
        for j, h in enumerate(circles):
            out["circles"][i, j] = (*h.center, h.radius)
            out["circle_mask"][i, j] = 1.0
        for j, h in enumerate(boxes):
            out["boxes"][i, j] = (*h.lo, *h.hi)
            out["box_mask"][i, j] = 1.0
        if not (np.all(np.isfinite(out["circles"][i])) and np.all(np.isfinite(out["boxes"][i]))):
            raise ConfigError(f"task {task.name!r}: non-finite hazard parameters")
    return out


def empty_hazards(b: int, arena_half: float = 1.0, speed_limit: float = 0.0) -> dict[str, np.ndarray]:
    class _L:  # noqa: N801
        pass

    lay = _L()
    lay.arena_half = arena_half

    class _T:  # noqa: N801
        hazards = ()
        name = "-"

    return hazard_arrays([_T()] * b, [lay] * b, speed_limit)


# ------------------------------------------------------------------------------ constraints


def _box_sdf(p: jax.Array, box: jax.Array) -> jax.Array:
    """Signed distance of points p (..., 2) to a box (4,) (negative inside)."""
    lo, hi = box[:2], box[2:]
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    q = jnp.abs(p - centre) - half
    outside = jnp.sqrt(jnp.sum(jnp.square(jnp.maximum(q, 0.0)), axis=-1) + 1e-12)
    inside = jnp.minimum(jnp.max(q, axis=-1), 0.0)
    return jnp.where(jnp.all(q <= 0, axis=-1), inside, outside)


def constraint_values(points: jax.Array, speeds: jax.Array, hz: dict, margin: float | jax.Array) -> jax.Array:
    """g (..., C) for points (..., P, 2) in the hazard plane and speeds (..., S), C = len(CONSTRAINTS); g <= 0
    is safe. Each keep-out / keep-in term is the worst over the P points; the speed term the fastest of S.
    ``margin`` is a scalar (``block_constraints`` maps per-block margins)."""
    c = hz["circles"]  # (Mc, 3)
    d = jnp.sqrt(jnp.sum(jnp.square(points[..., None, :] - c[:, :2]), axis=-1) + 1e-12)  # (..., P, Mc)
    g_c = jnp.where(hz["circle_mask"] > 0, c[:, 2] + margin - d, _INACTIVE).max(axis=(-2, -1))
    sdf = jax.vmap(lambda box: _box_sdf(points, box), out_axes=-1)(hz["boxes"])  # (..., P, Mb)
    g_b = jnp.where(hz["box_mask"] > 0, margin - sdf, _INACTIVE).max(axis=(-2, -1))
    g_in = (_box_sdf(points, hz["keep_in"]) + margin).max(axis=-1)
    g_v = jnp.where(jnp.isfinite(hz["speed"]), speeds.max(axis=-1) - jnp.minimum(hz["speed"], 1e6), _INACTIVE)
    return jnp.stack([g_c, g_b, g_in, g_v], axis=-1)


def interpolate_blocks(r0: jax.Array, r: jax.Array, points: int) -> jax.Array:
    """Check points between block ends: (H, K, R) read-outs.

    r0 (R,) is the current safety read-out (a family's position and velocity fields, or what its
    ``safety_fields`` declare), r (H, R) the predicted block ends; point k of block t is
    ``prev + (k+1)/K (end - prev)``, so the last one is the block end itself. A family's
    ``safety_geometry`` maps them to points in the hazard plane and speeds.
    """
    prev = jnp.concatenate([r0[None], r[:-1]], axis=0)
    s = (jnp.arange(1, points + 1, dtype=jnp.float32) / points)[None, :, None]
    return prev[:, None, :] + s * (r - prev)[:, None, :]


def block_constraints(points: jax.Array, speeds: jax.Array, hz: dict, margin) -> jax.Array:
    """(H, K, P, 2) check points and (H, K, S) speeds -> (H, C) worst g over each block's check points.

    ``margin``: a scalar, or (H,) one per block (see ``motion_margin``).
    """
    margin = jnp.broadcast_to(jnp.asarray(margin, jnp.float32), points.shape[:1])
    return jax.vmap(lambda p, v, m: constraint_values(p, v, hz, m).max(axis=0))(points, speeds, margin)


def motion_margin(p0: jax.Array, p: jax.Array, base, per_metre) -> jax.Array:
    """(H,) margins ``base + per_metre * (distance the block moves)``.

    A predictor's position error grows with how far it predicts the agent to move (its velocity
    error carries over the block), so fast predicted blocks get a wider margin than slow ones.
    p0 (P, 2) are the current points, p (H, P, 2) the predicted block ends; a block's travel is its
    farthest-moving point's.
    """
    prev = jnp.concatenate([p0[None], p[:-1]], axis=0)
    step = jnp.sqrt(jnp.sum(jnp.square(p - prev), axis=-1) + 1e-12).max(axis=-1)
    return base + per_metre * step


def violation(g: jax.Array) -> jax.Array:
    """Total violation: sum of max(g, 0) over steps and constraints."""
    return jnp.sum(jax.nn.relu(g))


def violating_steps(g: jax.Array) -> jax.Array:
    """Steps (rows of g (H, C)) where any constraint is violated."""
    return jnp.sum(jnp.any(g > 0, axis=-1))


# ------------------------------------------------------------------------------- handling


@dataclasses.dataclass(frozen=True)
class SafetyConfig:
    mode: str = "none"
    penalty_weight: float = 100.0
    rounds: int = 3
    rho: float = 10.0
    growth: float = 5.0


def validate(cfg: SafetyConfig) -> None:
    if cfg.mode not in SAFETY_MODES:
        raise ConfigError(f"--control.safety must be one of {', '.join(SAFETY_MODES)}, got {cfg.mode!r}")
    if cfg.penalty_weight < 0 or cfg.rho <= 0 or cfg.growth < 1 or cfg.rounds < 1:
        raise ConfigError("safety: need penalty_weight >= 0, auglag_rho > 0, auglag_growth >= 1, auglag_rounds >= 1")


Objective = Callable[[jax.Array], tuple[jax.Array, jax.Array, jax.Array]]


def ranked_cost(cost: jax.Array, g: jax.Array) -> jax.Array:
    """Constrained-CEM ranking key: feasible by cost, then infeasible by total violation."""
    v = violation(g)
    return cost + jnp.where(v > 0, RANK_OFFSET + RANK_SCALE * v, 0.0)


def augmented_term(g: jax.Array, lam: jax.Array, rho: jax.Array) -> jax.Array:
    """Inequality augmented-Lagrangian term sum (max(0, lam + rho g)^2 - lam^2) / (2 rho)."""
    return jnp.sum(jnp.square(jax.nn.relu(lam + rho * g)) - jnp.square(lam)) / (2.0 * rho)


def _with_iterations(pcfg: Any, rounds: int) -> Any:
    fields = {f.name for f in dataclasses.fields(pcfg)}
    changes = {"iterations": max(1, math.ceil(pcfg.iterations / rounds))}
    if "gd_iterations" in fields:
        changes["gd_iterations"] = max(1, math.ceil(pcfg.gd_iterations / rounds)) if pcfg.gd_iterations else 0
    return dataclasses.replace(pcfg, **changes)


def auglag_plan(planner: Any, objective: Objective, init: jax.Array, key: jax.Array, pcfg: Any,
                cfg: SafetyConfig) -> tuple[jax.Array, dict]:
    """Augmented Lagrangian around ``planner.plan``; the planner's iteration budget is split over rounds."""
    round_cfg = _with_iterations(pcfg, cfg.rounds)
    _, g0, _ = jax.eval_shape(objective, init)
    lam0 = jnp.zeros(g0.shape, jnp.float32)

    def one_round(carry, key):
        actions, lam, rho, best_a, best_key = carry
        al_cost = lambda a: (lambda c, g, _: c + augmented_term(g, lam, rho))(*objective(a))  # noqa: E731
        actions, _ = planner.plan(al_cost, actions, key, round_cfg)
        c, g, _ = objective(actions)
        k = ranked_cost(c, g)
        better = k < best_key
        best_a = jnp.where(better, actions, best_a)
        best_key = jnp.where(better, k, best_key)
        lam = jax.nn.relu(lam + rho * g)
        return (actions, lam, rho * cfg.growth, best_a, best_key), violation(g)

    carry0 = (init, lam0, jnp.asarray(cfg.rho, jnp.float32), init, jnp.asarray(jnp.inf, jnp.float32))
    (_, lam, _, best_a, _), viol_hist = jax.lax.scan(one_round, carry0, jax.random.split(key, cfg.rounds))
    return best_a, {"round_violation": viol_hist, "multipliers": lam}


def plan_safely(planner: Any, objective: Objective, init: jax.Array, key: jax.Array, pcfg: Any,
                cfg: SafetyConfig) -> tuple[jax.Array, dict]:
    """Plan with the chosen handling; info: final_cost, violation, violating_steps, infeasible, path."""
    if cfg.mode == "auglag":
        actions, extra = auglag_plan(planner, objective, init, key, pcfg, cfg)
    else:
        if cfg.mode == "none":
            fn = lambda a: objective(a)[0]  # noqa: E731
        elif cfg.mode == "penalty":
            fn = lambda a: (lambda c, g, _: c + cfg.penalty_weight * violation(g))(*objective(a))  # noqa: E731
        else:
            fn = lambda a: (lambda c, g, _: ranked_cost(c, g))(*objective(a))  # noqa: E731
        actions, extra = planner.plan(fn, init, key, pcfg)
        extra = {k: v for k, v in extra.items() if k == "best_cost"}
    c, g, path = objective(actions)
    steps = violating_steps(g)
    info = {**extra, "final_cost": c, "violation": violation(g), "violating_steps": steps,
            "infeasible": steps > 0, "path": path, "g": g}
    return actions, info


__all__ = [
    "CONSTRAINTS", "MAX_BOXES", "MAX_CIRCLES", "SAFETY_MODES", "SafetyConfig", "augmented_term",
    "auglag_plan", "block_constraints", "constraint_values", "empty_hazards", "hazard_arrays",
    "interpolate_blocks", "motion_margin", "blocked_nodes", "clearance_weights", "edge_clearance", "hazard_clearance",
    "plan_safely", "ranked_cost", "violating_steps", "violation",
]


# ---------------------------------------------------------------- hazard-aware goal graph


def hazard_clearance(points: np.ndarray, hz: dict) -> np.ndarray:
    """(...,) distance (m) from point sets (..., P, 2) to the nearest keep-out hazard's edge, the closest of the
    P points (negative inside one; +inf without hazards). ``hz`` holds one episode's hazard arrays (see
    ``hazard_arrays``)."""
    hz1 = {k: jnp.asarray(v) for k, v in hz.items()}
    points = jnp.asarray(points, jnp.float32)
    g = constraint_values(points, jnp.zeros(points.shape[:-2] + (1,)), hz1, 0.0)  # g = -clearance (keep-out terms)
    clearance = -np.asarray(jnp.maximum(g[..., 0], g[..., 1]), np.float64)
    return np.where(clearance >= -_INACTIVE - 1e-3, np.inf, clearance)  # every hazard slot padding (g = _INACTIVE)


def edge_clearance(node_points: np.ndarray, rows: np.ndarray, cols: np.ndarray, hz: dict, points: int = 5) -> np.ndarray:
    """(E,) the least hazard clearance along each goal-graph edge: the segment between its nodes' point
    sets node_points (N, P, 2) (each of the P points moved along its own segment), checked at ``points``
    evenly spaced places (ends included). An edge can jump over a narrow gap that no node lies in; its
    check points see the gap."""
    s = np.linspace(0.0, 1.0, points)[None, :, None, None]
    pts = node_points[rows][:, None] + s * (node_points[cols] - node_points[rows])[:, None]
    return hazard_clearance(pts, hz).min(axis=1)


def clearance_weights(clearance: np.ndarray, margin: float, widen: float = 2.0, inside: float = 20.0) -> np.ndarray:
    """Detour cost factors of goal-graph edges from their hazard clearance (``edge_clearance``).

    1 with clearance >= ``widen`` x ``margin``; rising linearly to ``inside`` as the clearance falls to the
    margin; ``inside`` closer than that. Narrow passages cost more than wide ones but stay passable, so
    when hazards narrow every way to the goal the detour still leads to the least narrow one instead of
    a flat, capped cost (removing the edges cuts the graph there). ``inside`` = inf removes them.
    """
    clearance = np.asarray(clearance, np.float64)
    outer = max(widen, 1.0) * margin
    if outer <= margin or not np.isfinite(inside):
        ramp = np.ones_like(clearance)
    else:
        ramp = 1.0 + (inside - 1.0) * np.clip((outer - clearance) / (outer - margin), 0.0, 1.0)
    return np.where(clearance < margin, inside, ramp)


def blocked_nodes(node_points: np.ndarray, hz: dict, margin: float) -> np.ndarray:
    """(N,) bool: goal-graph nodes with a point (of N, P, 2) in a keep-out hazard grown by margin."""
    return hazard_clearance(node_points, hz) < margin
