"""Receding-horizon MPC against the real simulator, many episodes at once.

Every `action_block` env steps each live episode re-plans: the policy returns one block of
`action_block` actions per episode, the block is executed in that episode's environment, and
the next plan is warm-started from the shifted previous one. Success and violations are the
environment's physical predicates, never latent distances.

Policies (all batched over episodes, `act(obs, states, key) -> (B, action_block, A)`):

* `LatentPlannerPolicy`: a planner over the learned world model (cost in latent space),
* `OraclePlannerPolicy`: the same planner on the true MuJoCo dynamics (cost on physical state),
* `RandomActionsPolicy`: uniform random actions, no planning,
* `GCBCPolicy`: a goal-conditioned behaviour-cloning policy (`jepa-mpc train --objective gcbc`), no planning.

`ControlConfig` holds the planner's full config (a tagged union over `jepa_mpc.planning.PLANNERS`,
`RandomActions` or `GCBC`) and the goal cost's (`jepa_mpc.goals`); the planner policies take the goal cost
built from it and compose it with `jepa_mpc.costs.make_cost`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal, Protocol, Union

import jax
import jax.numpy as jnp
import numpy as np
import tyro
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jepa_mpc import costs as cost_lib
from jepa_mpc import hierarchy as hierarchy_lib
from jepa_mpc import safety as safety_lib
from jepa_mpc.config import check_finite
from jepa_mpc.errors import ConfigError
from jepa_mpc.goals import GoalConfig, GoalCost, GraphGoal
from jepa_mpc.parallel import device_mesh
from jepa_mpc.planning import CEMConfig, PlannerConfig, planner_for, with_budget
from jepa_mpc_envs.family import TaskFamily, plane_geometry
from jepa_mpc_envs.rollout import DEFAULT_SIM_BACKEND


@dataclasses.dataclass(frozen=True)
class RandomActions:
    """No planning: uniform random actions in [-1, 1] (`planner:random-actions`, the floor every table needs)."""

    kind: ClassVar[str] = "random-actions"


@dataclasses.dataclass(frozen=True)
class GCBC:
    """No planning: act with the run's goal-conditioned behaviour-cloning policy (`planner:gcbc`, for a run
    trained with `--objective gcbc`): its predicted mean action block, clipped to the bounds, every block."""

    kind: ClassVar[str] = "gcbc"


NON_PLANNERS = (RandomActions, GCBC)  # policy configs that act without a planner

PolicyConfig = Union[PlannerConfig, Annotated[RandomActions, tyro.conf.subcommand(RandomActions.kind)],  # noqa: UP007
                     Annotated[GCBC, tyro.conf.subcommand(GCBC.kind)]]


@dataclasses.dataclass(frozen=True)
class ControlConfig:
    """How to plan at each MPC step (planner, goal cost, action blocks, constraints)."""

    planner: Annotated[PolicyConfig, tyro.conf.arg(name="planner", prefix_name=False)] = CEMConfig()
    """The planner with every one of its settings (`planner:cem|icem|mppi|gradient|cem-gd|random-shooting`,
    then `--planner.FIELD`), or `planner:random-actions` / `planner:gcbc` (no planning)."""
    goal: Annotated[GoalConfig, tyro.conf.arg(name="goal", prefix_name=False)] = GraphGoal()
    """The goal cost (`goal:graph` or `goal:latent`, then `--goal.FIELD`; jepa_mpc/goals.py)."""
    horizon: int | None = None
    """Override the planner's plan length in blocks (None: --planner.horizon, 5)."""
    samples: int | None = None
    """Override the planner's samples (CEM, MPPI, random shooting) or restarts (gradient); CEM's
    elites then follow (10 %) unless --planner.elites is set."""
    iterations: int | None = None
    """Override the planner's iterations (gradient: Adam steps)."""
    action_block: int | None = None
    """Env steps per plan block; the world model predicts one block ahead (actions concatenated). None:
    the run's (eval reads it; without a run the family's default_action_block); a value that differs
    from a learned model's is refused."""
    seed: int = 0
    hierarchy: Literal["none", "graph"] = "none"
    """The high level (jepa_mpc/hierarchy.py). none: the planner plans to the goal (flat MPC). graph: before
    every plan, the shortest route from the agent's cell to the goal on the goal graph (goal:graph) gives the
    next subgoal, `subgoal_steps` ahead along it, and the planner plans to it; to the goal itself once it is
    that near."""
    subgoal_steps: int = 0
    """hierarchy=graph: how far ahead along the route the subgoal lies, in env steps at the data's pace (the
    route's latent length / the data's median motion per step); 0: the plan's reach (horizon x action_block)."""
    safety: str = "none"
    """Constraint handling (jepa_mpc.safety): none | penalty | constrained (feasible-first ranking) | auglag."""
    safety_margin: float = 2.0
    """Safety margin added to every hazard, as a multiple of the probe's held-out RMSE on the safety points (TwoRoom: position)."""
    safety_buffer: float = 0.03
    """Extra margin in metres, for the predictor's own error (runs/blk: one-block position RMSE 0.036 m
    through the probe, 5 blocks 0.054 m); the only margin on oracle dynamics, which need no probe."""
    safety_motion: float = 0.25
    """Extra margin per metre a predicted block moves (the predictor's error grows with its motion);
    the margin of block t is the fixed one above plus this times the block's predicted travel. On the
    89 hazard tasks where the unconstrained planner violates: 0 -> 5 violating episodes, 0.25 -> none
    (success 95.5 % -> 94.4 %); a flat 0.05 m buffer instead also gives none but 91.0 % success."""
    safety_min_margin: float | None = None
    """Metres: each episode's fixed margin (above) may shrink, to no less than this, when the hazards leave no
    way to the goal that wide (the widest way on the goal graph from the start's node to the goal's, by the
    nodes' positions; goal:graph on a learned model); the motion margin still adds. None: never shrinks."""
    interp_points: int = 4
    """Constraint check points per predicted block, linearly interpolated between block ends (within_block=line)."""
    within_block: Literal["line", "learned"] = "line"
    """Where a learned model's constraints are checked inside a predicted block: `line`, at interp_points
    points on the straight line between its predicted read-outs; `learned`, at every env step, read by the
    probe's within-block read-out from the block's actions (it sees a block that speeds up and brakes again
    before its end; `jepa-mpc probe` fits it for models that predict blocks of several steps)."""
    speed_margin: float = 0.0
    """A learned model plans to below every speed limit by this multiple of the probe's held-out speed error
    (the RMSE of the speeds it reads one block ahead, at each env step of the block, as within_block reads
    them; `jepa-mpc probe` measures it); 0: up to the limit."""
    safety_rollout: float = 0.0
    """A learned model adds to block t's margin this multiple of the probe's measured error of the safety points
    it reads from latents predicted t blocks ahead (`jepa-mpc probe`: 1..5 blocks, the fifth's beyond): a margin
    from the model's calibrated multi-step error, which grows with t, instead of a constant; 0: none."""
    speed_limit: float = 0.0
    """Speed limit as a per-step constraint, on the family's speeds (TwoRoom: m/s; Reacher: rad/s, each joint;
    Push-T: m/s, block and pusher); the lower of it and a task's applies; 0: none."""
    penalty_weight: float = 100.0
    """safety=penalty: weight on the summed violations (metres)."""
    auglag_rounds: int = 3
    """safety=auglag: outer rounds (the planner's iterations are split over them)."""
    auglag_rho: float = 10.0
    auglag_growth: float = 5.0

    def safety_config(self):
        from jepa_mpc.safety import SafetyConfig

        return SafetyConfig(self.safety, self.penalty_weight, self.auglag_rounds, self.auglag_rho, self.auglag_growth)

    def planner_config(self) -> Any:
        """The planner's config with this config's budget overrides (None for random actions and GCBC)."""
        if isinstance(self.planner, NON_PLANNERS):
            return None
        return with_budget(self.planner, horizon=self.horizon, samples=self.samples, iterations=self.iterations)


def validate_control(cfg: ControlConfig) -> None:
    for name in ("horizon", "samples", "iterations", "action_block", "interp_points"):
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
            raise ConfigError(f"--control.{name.replace('_', '-')} must be > 0, got {getattr(cfg, name)}")
    check_finite(cfg, "--control.")
    cfg.planner_config()  # validates the planner's settings
    cfg.goal.validate()
    safety_lib.validate(cfg.safety_config())
    for name in ("safety_margin", "safety_buffer", "safety_motion", "safety_min_margin", "speed_margin", "speed_limit",
                 "subgoal_steps", "safety_rollout"):
        if (getattr(cfg, name) or 0.0) < 0:
            raise ConfigError(f"--control.{name.replace('_', '-')} must be >= 0, got {getattr(cfg, name)}")
    if cfg.hierarchy not in hierarchy_lib.HIERARCHIES:
        raise ConfigError(f"--control.hierarchy must be one of {', '.join(hierarchy_lib.HIERARCHIES)}, "
                          f"got {cfg.hierarchy!r}")
    if cfg.hierarchy == "graph" and not isinstance(cfg.goal, GraphGoal):
        raise ConfigError("--control.hierarchy graph plans its subgoals on the goal graph: use goal:graph")
    if cfg.hierarchy == "graph" and cfg.goal.source == "probe":
        raise ConfigError("--control.hierarchy graph needs a goal graph of embeddings (--goal.source data or "
                          "explore), not of the probe's positions")
    if cfg.hierarchy != "none" and isinstance(cfg.planner, NON_PLANNERS):
        raise ConfigError(f"--control.hierarchy {cfg.hierarchy} hands subgoals to a planner; "
                          f"planner:{cfg.planner.kind} does not plan")


# ------------------------------------------------------------------------------- policies


def resolved_action_block(cfg: ControlConfig) -> int:
    """cfg.action_block, which a policy needs set (eval sets it from the run: evaluate.with_run_settings)."""
    if cfg.action_block is None:
        raise ValueError("ControlConfig.action_block is None: set it (eval takes it from the run)")
    return cfg.action_block


class Policy(Protocol):
    action_block: int

    def start(self, obs: np.ndarray, goal_obs: np.ndarray, goal_states: np.ndarray, key: jax.Array) -> None: ...

    def act(self, obs: np.ndarray, states: np.ndarray, key: jax.Array, idx: np.ndarray) -> tuple[np.ndarray, dict]:
        """One block of actions (len(idx), action_block, A) for the live episodes `idx` (rows of obs/states)."""
        ...


def pad_rows(x: np.ndarray, size: int) -> np.ndarray:
    """x (n, ...) padded to `size` rows with copies of its first row (unchanged when it has `size` already)."""
    return np.concatenate([x, np.repeat(x[:1], size - len(x), axis=0)]) if len(x) < size else x


class _PlannerPolicy:
    """Shared machinery: a jitted batched plan over episodes, warm starts, the goal cost's ctx per goal."""

    def __init__(self, cfg: ControlConfig, action_dim: int, goal: GoalCost | None):
        """`goal`: the built goal cost (`cfg.goal.build(space, seed)`); None builds one that needs no data."""
        validate_control(cfg)
        if isinstance(cfg.planner, NON_PLANNERS):
            raise ConfigError(f"planner:{cfg.planner.kind} does not plan (use RandomActionsPolicy or GCBCPolicy)")
        self.cfg = cfg
        self.action_block = resolved_action_block(cfg)
        self.block_dim = action_dim * self.action_block
        self.planner_cfg = cfg.planner_config()
        self.planner = planner_for(self.planner_cfg)
        self.goal = goal if goal is not None else cfg.goal.build(None, cfg.seed)
        self.cost = cost_lib.make_cost(self.goal.terms(self.planner_cfg.horizon))
        self.nodes = self.goal.nodes
        self.plans: np.ndarray | None = None
        self.safety = cfg.safety_config()
        self.hazards: dict | None = None
        self.speed_limit = cfg.speed_limit
        self.routes: dict[str, np.ndarray] | None = None  # hierarchy=graph: each episode's routes to its goal
        self.subgoal_ahead = cfg.subgoal_steps or self.planner_cfg.horizon * self.action_block
        self.node_positions = getattr(self.goal, "node_positions", None)

    @property
    def room_graphs(self) -> Any:
        """The explored rooms' goal graphs (goal:graph --goal.source explore), else None."""
        return getattr(self.goal, "room_graphs", None)

    def set_tasks(self, tasks: Sequence[Any], layouts: Sequence[Any]) -> None:
        """Per-episode constraints (hazards, arena, speed limit) and goal graphs for the next `start`."""
        self.hazards = safety_lib.hazard_arrays(tasks, list(layouts), self.cfg.speed_limit)
        self.goal.set_tasks(tasks)

    margin: float = 0.0

    def _goal_ctx(self, goals: np.ndarray, starts: np.ndarray | None = None) -> dict:
        """ctx rows for goal points `goals` (B, D): the goal cost's and the constraints', with each episode's
        base safety margin ctx["margin"] (B,): this policy's, or fitted by the goal cost from the start
        points `starts` (B, D) when `--control.safety-min-margin` lets it shrink."""
        hz = self.hazards
        if hz is None or len(hz["speed"]) != len(goals):
            hz = safety_lib.empty_hazards(len(goals), speed_limit=self.cfg.speed_limit)
        self.hazards = None
        hierarchical = self.cfg.hierarchy == "graph"
        ctx = self.goal.episode_ctx(goals, hz if self.cfg.safety != "none" else None, self.margin, starts=starts,
                                    min_margin=self.cfg.safety_min_margin, routes=hierarchical)
        self.routes = {"next": ctx.pop("route_next"), "steps": ctx.pop("route_steps")} if hierarchical else None
        ctx.setdefault("margin", jnp.full((len(goals),), self.margin, jnp.float32))
        return {**ctx, **{k: jnp.asarray(v) for k, v in hz.items()}}

    devices: int = 1  # devices the episodes of a plan call are split over (a subclass's mesh)

    def _padded_size(self, n: int) -> int:
        """Rows a call for n live episodes is padded to: the next power of two (few shapes, few compiles),
        then to a multiple of the devices the episodes are split over."""
        size = min(1 << (n - 1).bit_length(), len(self.plans))
        return -(-size // self.devices) * self.devices

    def _with_subgoals(self, ctx: dict, keys: np.ndarray, idx: np.ndarray) -> tuple[dict, dict]:
        """hierarchy=graph: ctx rows (first len(idx) the live episodes') with each live episode's goal replaced
        by its next subgoal's node (plain distance to it: no detour excess), and the subgoals' record."""
        nodes = np.asarray(self.ctx["nodes"])[idx] if "nodes" in self.ctx else np.asarray(self.nodes)
        route_next, route_steps = self.routes["next"][idx], self.routes["steps"][idx]
        cells = hierarchy_lib.current_cells(keys, nodes, reachable=np.isfinite(route_steps))
        sub = hierarchy_lib.subgoal_nodes(cells, route_next, route_steps, self.subgoal_ahead)
        rows = np.flatnonzero(sub != hierarchy_lib.FINAL_GOAL)
        goal, excess = np.array(ctx["goal"]), np.array(ctx["excess"])
        goal[rows] = nodes[sub[rows]] if nodes.ndim == 2 else nodes[rows, sub[rows]]
        excess[rows] = 0.0
        where = np.full((len(idx), 2), np.nan, np.float32)
        if self.node_positions is not None and len(rows):
            where[rows] = self.node_positions[sub[rows], :2]
        return {**ctx, "goal": jnp.asarray(goal), "excess": jnp.asarray(excess)}, {"subgoal": sub, "subgoal_at": where}

    def _plan(self, start: np.ndarray, key: jax.Array, idx: np.ndarray,
              graph_keys: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        """Plan for the live episodes `idx` (their start rows first in `start`, an array or a tuple of arrays,
        which may already be padded by `pad_rows`), padded to `_padded_size`. `graph_keys` (first len(idx) rows): where each live
        episode is in the goal graph's space (hierarchy=graph picks its subgoal from it)."""
        n = len(idx)
        size = self._padded_size(n)
        rows = np.concatenate([idx, np.full(size - n, idx[0])])  # pad with copies of a live episode
        start = jax.tree.map(lambda x: jnp.asarray(pad_rows(np.asarray(x), size)), start)
        ctx, subgoals = {k: v[rows] for k, v in self.ctx.items()}, {}
        if self.routes is not None:
            ctx, subgoals = self._with_subgoals(ctx, np.asarray(graph_keys)[:n], idx)
        t0 = time.perf_counter()
        actions, info = self._plan_batch(start, ctx, jnp.asarray(self.plans[rows]), jax.random.split(key, size))
        actions = np.asarray(jax.block_until_ready(actions))[:n]
        latency = time.perf_counter() - t0
        self.plans[idx] = np.concatenate([actions[:, 1:], actions[:, -1:]], axis=1)  # shift_plan, fill "repeat"
        block = actions[:, 0].reshape(n, self.action_block, -1)
        return block, {
            "latency_s": latency,
            "final_cost": np.asarray(info["final_cost"])[:n],
            "infeasible": np.asarray(info["infeasible"])[:n],
            "predicted_violation": np.asarray(info["violation"])[:n],
            "planned_path": np.asarray(info["path"])[:n],
            **subgoals,
        }

    def _reset_plans(self, b: int) -> None:
        self.plans = np.zeros((b, self.planner_cfg.horizon, self.block_dim), np.float32)


# Sample rows (episodes x samples) one vmapped slice of a batched CPU plan holds: each predictor layer's
# activations (rows x 256 floats, 2.4 MB at 8 episodes x 300 samples) then stay in a core's L2 cache
# (4 MiB here). Measured with a TwoRoom run, CEM 300 x 30, goal:latent, min of 3 calls on 2 cores:
# per episode 139 ms vmapping 128 episodes at once, 63 ms in slices of 8, 107 ms in slices of 16.
CPU_CHUNK_ROWS = 2560


def episode_chunk(samples: int, requested: int = 0, backend: str | None = None) -> int:
    """Episodes planned together in one vmapped slice of a batched plan (0: all at once).

    `requested` > 0 is taken as is; 0 picks: on CPU the largest power of two whose sample rows fit
    CPU_CHUNK_ROWS (300 samples: 8; at least 1), elsewhere (GPU) 0. Slices run one after another
    (`jax.lax.map`); each episode's plan is the same computation either way."""
    if requested > 0:
        return requested
    if (backend or jax.default_backend()) != "cpu":
        return 0
    fit = max(1, CPU_CHUNK_ROWS // max(1, samples))
    return 1 << (fit.bit_length() - 1)


EPISODE_AXIS = "episodes"


def map_episodes(fn: Callable[..., Any], chunk: int, *xs: Any, mesh: Mesh | None = None) -> Any:
    """vmap `fn` over the leading (episode) axis of `xs`, `chunk` episodes at a time (0: all at once).

    With a `mesh` of several devices (`episode_mesh`) the episodes are first split over its devices
    (`jax.shard_map`), each device planning its share in slices of `chunk`; the leading axis must divide
    among them. Each episode's plan is the same computation either way."""
    if mesh is not None and mesh.devices.size > 1:
        spec = PartitionSpec(EPISODE_AXIS)
        # check_vma off: the planners' loops start from constants shared by all devices, which the
        # type check would have each cast to per-device values first; the computation is the same
        return jax.shard_map(lambda *local: map_episodes(fn, chunk, *local), mesh=mesh, in_specs=spec,
                             out_specs=spec, check_vma=False)(*xs)
    if chunk <= 0:
        return jax.vmap(fn)(*xs)
    return jax.lax.map(lambda args: fn(*args), xs, batch_size=chunk)


def episode_mesh(devices: int = 0) -> Mesh | None:
    """A mesh over the first `devices` local devices (0: all) to split a plan call's episodes over, or None
    with one device. On CPU several exist only with XLA_FLAGS=--xla_force_host_platform_device_count=N."""
    mesh = device_mesh(devices, EPISODE_AXIS, local=True)
    return mesh if mesh.devices.size > 1 else None


class LatentPlannerPolicy(_PlannerPolicy):
    """Plan in the learned latent space: encode obs and goal, roll the predictor, cost on latents."""

    def __init__(self, model: Any, cfg: ControlConfig, goal: GoalCost | None, probe: Any = None,
                 chunk: int = 0, devices: int = 1, geometry: Geometry | None = None):
        """`goal`: the goal cost built on this model's latents (`jepa_mpc.goals.LatentSpace`); `chunk`:
        episodes per vmapped slice of a batched plan (`episode_chunk`; 0: chosen for the backend);
        `devices`: split each plan call's episodes over the first N local devices (0: all; `episode_mesh`);
        `geometry`: the family's safety geometry on the probe's read-outs (`family_geometry`; None: (x, y, vx, vy))."""
        raw_dim = model.action_dim // resolved_action_block(cfg)
        if raw_dim * cfg.action_block != model.action_dim:
            raise ConfigError(
                f"--action-block {cfg.action_block} does not divide the model's action input ({model.action_dim})"
            )
        super().__init__(cfg, raw_dim, goal)
        if probe is None and cfg.safety != "none":
            raise ConfigError(f"--control.safety {cfg.safety} needs a probe (run `jepa-mpc probe {model.run_dir}`)")
        self.model = model
        self.history = getattr(model, "history", 1)  # latents the predictor sees: the policy keeps the past ones
        self.probe = probe
        self.margin = cfg.safety_buffer + (cfg.safety_margin * probe.point_rmse if probe is not None else 0.0)
        learned_steps = cfg.within_block == "learned" and cfg.safety != "none" and probe is not None
        if learned_steps and probe.within_block != model.action_block:
            raise ConfigError(f"--control.within-block learned needs the probe's within-block read-out for blocks of "
                              f"{model.action_block} env steps (rerun `jepa-mpc probe {model.run_dir}`)")
        self.speed_reserve = 0.0
        if cfg.speed_margin > 0 and cfg.safety != "none" and probe is not None:
            scale = probe.speed_rmse(cfg.within_block)
            if scale is None:
                raise ConfigError(f"--control.speed-margin needs the probe's measured speed error "
                                  f"(rerun `jepa-mpc probe {model.run_dir}`)")
            self.speed_reserve = cfg.speed_margin * scale
        speed_reserve, within_block = self.speed_reserve, "learned" if learned_steps else "line"
        self.rollout_reserve = rollout_reserve = self._rollout_reserve(cfg, probe, model.run_dir)
        geometry = geometry or family_geometry(None)
        encode_p = model.encode_p
        self._encode = jax.jit(lambda state, obs: encode_p(state, obs))
        cost, planner, pcfg, nodes, rollout_p = self.cost, self.planner, self.planner_cfg, self.nodes, model.rollout_p
        safety_cfg, points, per_metre = self.safety, cfg.interp_points, cfg.safety_motion
        probe_arrays = probe.arrays() if probe is not None else None
        self.chunk = chunk = episode_chunk(pcfg.samples, chunk)
        mesh = episode_mesh(devices)
        self.devices = 1 if mesh is None else mesh.devices.size
        from jepa_mpc.probe import apply_probe, block_readouts

        @jax.jit
        def plan_batch(params, probe_p, start, ctx, init, keys):
            def one(start, ctx, init, key):
                ctx = {"nodes": nodes, **ctx}  # per-episode nodes (task graphs) win
                z_hist, a_past = start  # the last L latents (L, D), the current one last; the L - 1 blocks between
                z0 = z_hist[-1]

                def objective(a):
                    z = rollout_p(params, z_hist, a, a_past)
                    c = cost(z, a, ctx)
                    if probe_p is None:  # no read-out: no constraint can be evaluated
                        h = a.shape[0]
                        return c, jnp.full((h, len(safety_lib.CONSTRAINTS)), -1.0), jnp.zeros((h, 2))
                    r, r0 = apply_probe(probe_p, z), apply_probe(probe_p, z0)
                    pts, speeds = geometry(block_readouts(probe_p, r0, r, a, within_block, points))
                    speeds = speeds + speed_reserve  # planned to below the limit by the reserve
                    ends, now = geometry(r)[0], geometry(r0)[0]
                    margins = safety_lib.motion_margin(now, ends, ctx["margin"], per_metre)
                    if rollout_reserve is not None:
                        margins = margins + rollout_reserve[: margins.shape[0]]
                    return c, safety_lib.block_constraints(pts, speeds, ctx, margins), ends[:, 0]

                return safety_lib.plan_safely(planner, objective, init, key, pcfg, safety_cfg)

            return map_episodes(one, chunk, start, ctx, init, keys, mesh=mesh)

        params = model.state
        if mesh is not None:  # every device plans with the whole model
            params, probe_arrays = jax.device_put((params, probe_arrays), NamedSharding(mesh, PartitionSpec()))
        self._plan_batch = lambda *args: plan_batch(params, probe_arrays, *args)

    def _rollout_reserve(self, cfg: ControlConfig, probe: Any, run_dir: str) -> jax.Array | None:
        """(horizon,) the margins --control.safety-rollout adds, block by block; None when off."""
        if cfg.safety_rollout <= 0 or cfg.safety == "none" or probe is None:
            return None
        roll = probe.meta.get("rollout_position_rmse")
        if not isinstance(roll, list) or not roll:
            raise ConfigError(f"--control.safety-rollout needs the probe's error of predicted latents "
                              f"(rerun `jepa-mpc probe {run_dir}`)")
        h = self.planner_cfg.horizon
        per_block = [float(roll[min(t, len(roll) - 1)]) for t in range(h)]
        return cfg.safety_rollout * jnp.asarray(per_block, jnp.float32)

    def encode(self, obs: np.ndarray) -> jax.Array:
        return self._encode(self.model.state, jnp.asarray(obs))

    def start(self, obs, goal_obs, goal_states, key):
        z = np.asarray(self.encode(obs))
        self.ctx = self._goal_ctx(np.asarray(self.encode(goal_obs)), z)
        self._reset_plans(len(obs))
        # a model with a latent history starts each episode as training pads a window: the first latent
        # repeated, zero actions before it
        past = self.history - 1
        self.z_past = np.repeat(z[:, None], past, axis=1)
        self.a_past = np.zeros((len(obs), past, self.block_dim), np.float32)

    def act(self, obs, states, key, idx):
        n = len(idx)
        # encoded at the padded size, so the encoder compiles once per size, not once per live count
        z = np.asarray(self.encode(pad_rows(obs, self._padded_size(n))))
        z_hist = np.concatenate([self.z_past[idx], z[:n, None]], axis=1)  # (n, L, D)
        block, info = self._plan((z_hist, self.a_past[idx]), key, idx, graph_keys=z)
        if self.history > 1:  # this step's latent and the block it executes join each episode's past
            self.z_past[idx] = z_hist[:, 1:]
            self.a_past[idx] = np.concatenate([self.a_past[idx][:, 1:], block.reshape(n, 1, -1)], axis=1)
        return block, info


class OraclePlannerPolicy(_PlannerPolicy):
    """The same planner on the true simulator: batched MuJoCo rollouts, cost on physical position
    (the family's goal features, e.g. Reacher's joint angles, Push-T's block pose (x, y, angle); constraints
    read its declared position and velocity: `mujoco_block_simulator` packs them after the goal features).

    A goal graph is built the same way, on the goal features (`jepa_mpc.goals.StateSpace`).
    """

    def __init__(self, simulate: Callable[[np.ndarray, np.ndarray], np.ndarray], cfg: ControlConfig,
                 goal: GoalCost | None, action_dim: int = 2, goal_dim: int = 2, geometry: Geometry | None = None,
                 features: Callable[[np.ndarray], np.ndarray] | None = None):
        """`geometry`: the family's safety geometry on its read-outs (`family_geometry`; None: (x, y, vx, vy));
        `features`: states (B, S) -> goal features (B, goal_dim), where the goal graph's nodes live
        (`TaskFamily.goal_features`; None: the first goal_dim state fields)."""
        super().__init__(cfg, action_dim, goal)
        self.features = features or (lambda states: np.asarray(states)[:, :goal_dim])
        cost, planner, pcfg, nodes = self.cost, self.planner, self.planner_cfg, self.nodes
        horizon, block = pcfg.horizon, cfg.action_block
        # A simulator marked `per_step` returns every env step's (goal features, safety read-out) (N, H, block,
        # goal_dim + R): constraints are then checked at each env step; otherwise (N, H, goal_dim + R) block ends,
        # interpolated from the start's read-out (its fields `simulate.readout`).
        per_step = bool(getattr(simulate, "per_step", False))
        readout = list(getattr(simulate, "readout", range(4)))
        width = goal_dim + len(readout)
        geometry = geometry or family_geometry(None)
        self.goal_dim = goal_dim
        out_shape = (horizon, block, width) if per_step else (horizon, width)
        safety_cfg, points = self.safety, cfg.interp_points
        self.margin = cfg.safety_buffer

        def sim_callback(states, actions):
            lead = states.shape[:-1]
            # Candidates mid-optimisation may be non-finite or out of bounds (a gradient step):
            # the simulator gets what the env would execute, never NaN controls.
            actions = np.clip(np.nan_to_num(np.asarray(actions), nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
            out = simulate(states.reshape(-1, states.shape[-1]), actions.reshape((-1,) + actions.shape[-2:]))
            return out.reshape(lead + out_shape).astype(np.float32)

        def rollout(state0, actions):
            shape = jax.ShapeDtypeStruct(out_shape, jnp.float32)
            return jax.pure_callback(sim_callback, shape, state0, actions, vmap_method="broadcast_all")

        @jax.jit
        def plan_batch(state0, ctx, init, keys):
            def one(state0, ctx, init, key):
                ctx = {"nodes": nodes, **ctx}  # per-episode nodes (task graphs) win

                def objective(a):
                    out = rollout(state0, a)
                    ends = out[:, -1, :goal_dim] if per_step else out[..., :goal_dim]  # goal features after each block
                    r = out[..., goal_dim:] if per_step else \
                        safety_lib.interpolate_blocks(state0[jnp.array(readout)], out[..., goal_dim:], points)
                    pts, speeds = geometry(r)
                    g = safety_lib.block_constraints(pts, speeds, ctx, ctx["margin"])
                    return cost(ends, a, ctx), g, pts[:, -1, 0]

                return safety_lib.plan_safely(planner, objective, init, key, pcfg, safety_cfg)

            return jax.vmap(one)(state0, ctx, init, keys)

        self._plan_batch = plan_batch

    def start(self, obs, goal_obs, goal_states, key):
        self.ctx = self._goal_ctx(np.asarray(goal_states)[:, : self.goal_dim])
        self._reset_plans(len(obs))

    def act(self, obs, states, key, idx):
        return self._plan(jnp.asarray(states, jnp.float32), key, idx, graph_keys=self.features(np.asarray(states)))


class RandomActionsPolicy:
    """No planning: uniform random actions in [-1, 1] (the floor every table needs)."""

    def __init__(self, action_block: int = 5, action_dim: int = 2):
        self.action_block = action_block
        self.action_dim = action_dim

    def start(self, obs, goal_obs, goal_states, key):
        pass

    def act(self, obs, states, key, idx):
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())
        return rng.uniform(-1.0, 1.0, (len(idx), self.action_block, self.action_dim)).astype(np.float32), {"latency_s": 0.0}


class GCBCPolicy:
    """A trained GCBC policy (`jepa_mpc.gcbc.LoadedPolicy`) acting one block at a time: the predicted mean
    action block for (observation, the task's goal observation), clipped to [-1, 1]; deterministic."""

    def __init__(self, policy: Any, action_block: int):
        raw_dim = policy.action_dim // action_block
        if raw_dim * action_block != policy.action_dim:
            raise ConfigError(f"--control.action-block {action_block} does not divide the policy's action "
                              f"block ({policy.action_dim}) of run {policy.run_dir}")
        self.policy = policy
        self.action_block = action_block
        self.goal_obs: np.ndarray | None = None
        self._act = jax.jit(policy.act_p)

    def start(self, obs, goal_obs, goal_states, key):
        self.goal_obs = np.asarray(goal_obs)

    def act(self, obs, states, key, idx):
        n = len(idx)
        size = 1 << (n - 1).bit_length()  # padded to a power of two: few compiles
        t0 = time.perf_counter()
        a = self._act(self.policy.state, jnp.asarray(pad_rows(np.asarray(obs), size)),
                      jnp.asarray(pad_rows(self.goal_obs[idx], size)))
        a = np.asarray(jax.block_until_ready(a))[:n]
        return a.reshape(n, self.action_block, -1).astype(np.float32), {"latency_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------- the MPC loop


@dataclasses.dataclass
class EpisodeRecord:
    task: str
    success: bool = False
    steps: int = 0
    violation_steps: int = 0
    final_distance: float = float("nan")
    path: list = dataclasses.field(default_factory=list)  # positions (x, y) after reset and each step
    states: list = dataclasses.field(default_factory=list)  # full physical states, same steps (for videos)
    plans: int = 0
    infeasible_plans: int = 0  # plans acted on although predicted to violate a constraint (none feasible found)
    speed_violation_steps: int = 0  # steps above the speed limit (when one is set); also in violation_steps
    planned_paths: list = dataclasses.field(default_factory=list)  # (step, predicted block ends (H, 2), infeasible)
    subgoals: list = dataclasses.field(default_factory=list)  # hierarchy: (step, node, its position or None) per change

    @property
    def violation_free(self) -> bool:
        return self.violation_steps == 0


TIME_PARTS = ("reset", "start", "act", "simulate")


def run_mpc(envs: Sequence[Any], tasks: Sequence[Any], policy: Policy, key: jax.Array,
            on_plan: Callable[[dict], None] | None = None, *, family: TaskFamily,
            time_s: dict[str, float] | None = None) -> list[EpisodeRecord]:
    """Run one episode per (env, task) pair in lockstep until each succeeds or runs out of steps.
    `family` (the envs' TaskFamily) declares which state fields are the recorded path and the speed.
    `time_s` (optional) accumulates wall seconds per part (TIME_PARTS): env resets and goal renders,
    `policy.start` (goal encoding, goal-graph detours), `policy.act` (encoding, planning, transfers) and
    stepping the simulator with the episodes' bookkeeping."""
    if len(envs) != len(tasks):
        raise ValueError("one env per task")
    time_s = {} if time_s is None else time_s
    for part in TIME_PARTS:
        time_s.setdefault(part, 0.0)
    clock = time.perf_counter()

    def lap(part: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        time_s[part] += now - clock
        clock = now

    records = [EpisodeRecord(task=t.name) for t in tasks]
    obs, goal_obs, goal_states, states = [], [], [], []
    for env, task, rec in zip(envs, tasks, records):
        o, info = env.reset(options={"task": task})
        obs.append(o)
        goal_obs.append(env.observation_at(task.goal))
        goal_states.append(np.asarray(info["goal"], np.float32))
        states.append(np.asarray(info["state"], np.float32))
        rec.path.append([float(v) for v in family.positions(info["state"])])
        rec.states.append(np.asarray(info["state"], np.float32))
        rec.final_distance = info["distance_to_goal"]
        rec.success = bool(info["success"])
    obs, states = np.stack(obs), np.stack(states)
    key, sub = jax.random.split(key)
    if hasattr(policy, "set_tasks"):
        policy.set_tasks(tasks, [env.layout for env in envs])
    planner_limit = float(getattr(policy, "speed_limit", 0.0) or 0.0)
    speed_limits = [min([v for v in (getattr(t, "speed_limit", None), planner_limit) if v] or [0.0])
                    for t in tasks]  # the task's limit, or the planner's own if lower (0: none)
    lap("reset")
    policy.start(obs, np.stack(goal_obs), np.stack(goal_states), sub)
    lap("start")
    live = np.array([not r.success for r in records])
    while live.any():
        key, sub = jax.random.split(key)
        idx = np.flatnonzero(live)
        blocks, plan_info = policy.act(obs[idx], states[idx], sub, idx)
        lap("act")
        if on_plan is not None:
            on_plan({**plan_info, "live": len(idx)})
        for j, i in enumerate(idx):
            env, rec = envs[i], records[i]
            rec.plans += 1
            if "infeasible" in plan_info:
                rec.infeasible_plans += int(plan_info["infeasible"][j])
                rec.planned_paths.append((rec.steps, np.asarray(plan_info["planned_path"][j]).tolist(),
                                          bool(plan_info["infeasible"][j])))
            if "subgoal" in plan_info and (not rec.subgoals or rec.subgoals[-1][1] != int(plan_info["subgoal"][j])):
                at = np.asarray(plan_info["subgoal_at"][j], np.float64)
                rec.subgoals.append((rec.steps, int(plan_info["subgoal"][j]),
                                     np.round(at, 4).tolist() if np.all(np.isfinite(at)) else None))
            for a in blocks[j]:
                o, _, terminated, truncated, info = env.step(a)
                rec.steps += 1
                too_fast = speed_limits[i] > 0 and float(np.max(family.safety_geometry(
                    family.safety_readout(np.asarray(info["state"], np.float64)), env.layout, np)[1])) > speed_limits[i]
                rec.speed_violation_steps += int(too_fast)
                rec.violation_steps += int(bool(info["violation"]) or too_fast)
                rec.path.append([float(v) for v in family.positions(info["state"])])
                rec.states.append(np.asarray(info["state"], np.float32))
                rec.final_distance = info["distance_to_goal"]
                obs[i], states[i] = o, info["state"]
                if terminated or truncated:
                    rec.success = bool(info["success"])
                    live[i] = False
                    break
        lap("simulate")
    return records


# ------------------------------------------------------------------ true dynamics (oracle)


def mujoco_block_simulator(model: Any, frame_skip: int, action_block: int, per_step: bool = True, *,
                           env: TaskFamily, backend: str = DEFAULT_SIM_BACKEND) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """`simulate(states (N, S), blocks (N, H, action_block * 2)) -> `oracle_features` (goal features, safety
    read-out) (N, H, goal_dim + R) after each block, or with `per_step` (default; marked by `simulate.per_step`)
    every env step's (N, H, action_block, goal_dim + R), so the oracle checks constraints at every env step.

    One batched `mujoco.rollout` over all N sequences, one thread per core (the data collector's
    simulator): the true dynamics, contacts with the walls included. `env`: the TaskFamily whose state
    conversion and collector to use; "positions" are its goal features. `backend`: its simulator ("mjx":
    the same rollouts with MJX on JAX's devices, envs/mjx_rollout.py).
    """
    collector = env.oracle_collector(model, frame_skip, backend)

    def simulate(states: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        n, h = blocks.shape[:2]
        steps = blocks.reshape(n, h * action_block, -1)
        out = collector.run(states, steps)["state"][:, 1:]
        if per_step:
            return oracle_features(env, out.reshape(n, h, action_block, -1))
        return oracle_features(env, out[:, action_block - 1 :: action_block])

    simulate.per_step = per_step
    simulate.readout = env.safety_indices  # which fields of a start state are its read-out (interpolation)
    return simulate


def oracle_features(env: TaskFamily, states: np.ndarray) -> np.ndarray:
    """(..., state_dim) -> (..., goal_dim + R): the family's declared goal features and safety read-out, in that
    order (what the oracle's cost and constraints read)."""
    return np.concatenate([env.goal_features(states), env.safety_readout(states)], axis=-1)


Geometry = Callable[[jax.Array], tuple[jax.Array, jax.Array]]
"""Safety read-outs (..., R) -> (points (..., P, 2), speeds (..., S)), traced inside the planners."""


def family_geometry(env: TaskFamily | None, layout: Any = None) -> Geometry:
    """A family's safety geometry for one layout, on jax arrays (None: the (x, y, vx, vy) default)."""
    if env is None:
        return lambda r: plane_geometry(r, None, jnp)
    return lambda r: env.safety_geometry(r, layout, jnp)
