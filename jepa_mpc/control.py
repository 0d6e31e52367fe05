"""Receding-horizon MPC against the real simulator, many episodes at once.

Every `action_block` env steps each live episode re-plans: the policy returns one block of
`action_block` actions per episode, the block is executed in that episode's environment, and
the next plan is warm-started from the shifted previous one. Success and violations are the
environment's physical predicates, never latent distances.

Policies (all batched over episodes, `act(obs, states, key) -> (B, action_block, A)`):

* `LatentPlannerPolicy`: a planner over the learned world model (cost in latent space),
* `OraclePlannerPolicy`: the same planner on the true MuJoCo dynamics (cost on physical state),
* `RandomActionsPolicy`: uniform random actions, no planning.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jepa_mpc import costs as cost_lib
from jepa_mpc import goal_graph
from jepa_mpc import safety as safety_lib
from jepa_mpc.errors import ConfigError
from jepa_mpc.planning import get_planner, make_config, shift_plan
from jepa_mpc_envs.family import TaskFamily
from jepa_mpc_envs.registry import TWOROOM


@dataclasses.dataclass(frozen=True)
class ControlConfig:
    """How to plan at each MPC step (planner budget, goal cost, action blocks)."""

    planner: str = "cem"
    """cem | mppi | gradient | cem-gd | random-shooting (see jepa_mpc.planning.PLANNERS)."""
    horizon: int = 5
    """Plan length in blocks."""
    samples: int | None = None
    """Sequences per iteration (CEM, MPPI, random shooting) or restarts (gradient); None: the planner's default."""
    iterations: int | None = None
    """Planner iterations (gradient: Adam steps); None: the planner's default."""
    action_block: int = 5
    """Env steps per plan block; the world model predicts one block ahead (actions concatenated)."""
    goal_cost: str = "graph"
    """"graph": latent distance + detour excess from the data's reachability graph (sees walls);
    "latent": plain latent distance to the goal embedding (greedy; stalls at walls)."""
    goal_mode: str = "mixed"
    """Goal term on the "terminal" block only, on "all" blocks (the last counting double), or
    "mixed": straight latent distance on all blocks, detour excess (graph) at the last."""
    graph_nodes: int = 1500
    graph_space: str = "latent"
    """Space the goal graph is built in: "latent" (raw embeddings) or "probe" (a linear read-out of
    position fitted on the dataset; measured worse on TwoRoom: 37.5 % vs 81 % on 32 hard tasks)."""
    seed: int = 0
    safety: str = "none"
    """Constraint handling (jepa_mpc.safety): none | penalty | constrained (feasible-first ranking) | auglag."""
    safety_margin: float = 2.0
    """Safety margin added to every hazard, as a multiple of the probe's held-out position RMSE."""
    safety_buffer: float = 0.03
    """Extra margin in metres, for the predictor's own error (runs/blk: one-block position RMSE 0.036 m
    through the probe, 5 blocks 0.054 m); the only margin on oracle dynamics, which need no probe."""
    safety_motion: float = 0.25
    """Extra margin per metre a predicted block moves (the predictor's error grows with its motion);
    the margin of block t is the fixed one above plus this times the block's predicted travel. On the
    89 hazard tasks where the unconstrained planner violates: 0 -> 5 violating episodes, 0.25 -> none
    (success 95.5 % -> 94.4 %); a flat 0.05 m buffer instead also gives none but 91.0 % success."""
    interp_points: int = 4
    """Constraint check points per predicted block, linearly interpolated between block ends."""
    speed_limit: float = 0.0
    """Speed limit (m/s) as a per-step constraint; 0: none."""
    penalty_weight: float = 100.0
    """safety=penalty: weight on the summed violations (metres)."""
    auglag_rounds: int = 3
    """safety=auglag: outer rounds (the planner's iterations are split over them)."""
    auglag_rho: float = 10.0
    auglag_growth: float = 5.0
    graph_source: str = "data"
    """Episodes the goal graph is built from: "data" (the training dataset's) or "explore" (reward-free
    exploration of each task's own room before its tasks, `explore_episodes` episodes of the dataset's
    exploration policy; for rooms the data never showed, see jepa_mpc/room_graph.py)."""
    explore_episodes: int = 64
    hazard_graph: bool = True
    """With safety on and goal_cost=graph: drop goal-graph nodes inside hazards (+ margin) before the
    detour search, so the goal cost routes around hazards as it does around walls."""

    def safety_config(self):
        from jepa_mpc.safety import SafetyConfig

        return SafetyConfig(self.safety, self.penalty_weight, self.auglag_rounds, self.auglag_rho, self.auglag_growth)

    def planner_config(self, action_dim: int) -> Any:
        """The planner's own config, with this budget (fields a planner lacks are left alone)."""
        planner = get_planner(self.planner)
        fields = {f.name for f in dataclasses.fields(planner.config_cls)}
        wanted = {"horizon": self.horizon, "samples": self.samples, "iterations": self.iterations}
        del action_dim  # bounds are [-1, 1] for every dimension
        return make_config(self.planner, **{k: v for k, v in wanted.items() if k in fields and v is not None})


def validate_control(cfg: ControlConfig) -> None:
    for name in ("horizon", "samples", "iterations", "action_block", "graph_nodes", "interp_points", "explore_episodes"):
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {getattr(cfg, name)}")
    if cfg.graph_source not in ("data", "explore"):
        raise ConfigError(f"--graph-source must be 'data' or 'explore', got {cfg.graph_source!r}")
    if cfg.graph_source == "explore" and cfg.graph_space != "latent":
        raise ConfigError("--control.graph-source explore builds the graph on latents (--control.graph-space latent)")
    if cfg.graph_space not in ("probe", "latent"):
        raise ConfigError(f"--graph-space must be 'probe' or 'latent', got {cfg.graph_space!r}")
    if cfg.goal_cost not in ("graph", "latent"):
        raise ConfigError(f"--goal-cost must be 'graph' or 'latent', got {cfg.goal_cost!r}")
    if cfg.goal_mode not in ("terminal", "all", "mixed"):
        raise ConfigError(f"--goal-mode must be 'terminal', 'all' or 'mixed', got {cfg.goal_mode!r}")
    get_planner(cfg.planner)
    safety_lib.validate(cfg.safety_config())
    if min(cfg.safety_margin, cfg.safety_buffer, cfg.safety_motion, cfg.speed_limit) < 0:
        raise ConfigError("--control.safety-margin, --control.safety-buffer, --control.safety-motion and "
                          "--control.speed-limit must be >= 0")


# ----------------------------------------------------------------------------- goal costs


def goal_step_weights(horizon: int, mode: str) -> jax.Array:
    """Per-block goal weights: terminal only, or every block with the last counting double."""
    w = jnp.zeros((horizon,), jnp.float32) if mode == "terminal" else jnp.ones((horizon,), jnp.float32) / horizon
    return w.at[-1].add(1.0)


def goal_term(cfg: ControlConfig, readout: Callable[[jax.Array], jax.Array] | None = None,
              scale: float = 1.0) -> cost_lib.Term:
    """Goal term on (H, D) predicted embeddings; ctx holds goal, and for "graph" nodes + excess.

    `readout` maps a latent into the graph's space when the graph is not built on latents
    (e.g. the probe's position read-out); `scale` converts the graph's detour excess to latent units.
    """
    weights = goal_step_weights(cfg.horizon, cfg.goal_mode)

    def one(z, goal, nodes, excess):
        return goal_graph.graph_goal_distance(z, goal, nodes, excess, None if readout is None else readout(z), scale)

    def fn(z_seq, a_seq, ctx):
        if cfg.goal_cost == "latent":
            return jnp.sqrt(jnp.sum(jnp.square(z_seq - ctx["goal"]), axis=-1) + 1e-12) * weights
        graph_dist = jax.vmap(one, in_axes=(0, None, None, None))
        if cfg.goal_mode in ("terminal", "mixed"):  # node search for the last latent only
            last = graph_dist(z_seq[-1:], ctx["goal"], ctx["nodes"], ctx["excess"])[0]
            if cfg.goal_mode == "terminal":
                return jnp.zeros(z_seq.shape[:1], jnp.float32).at[-1].set(last * weights[-1])
            straight = jnp.sqrt(jnp.sum(jnp.square(z_seq - ctx["goal"]), axis=-1) + 1e-12)
            return (straight * weights).at[-1].add(last - straight[-1])
        return graph_dist(z_seq, ctx["goal"], ctx["nodes"], ctx["excess"]) * weights

    return cost_lib.Term(fn)


# ------------------------------------------------------------------------------- policies


class Policy(Protocol):
    action_block: int

    def start(self, obs: np.ndarray, goal_obs: np.ndarray, goal_states: np.ndarray, key: jax.Array) -> None: ...

    def act(self, obs: np.ndarray, states: np.ndarray, key: jax.Array, idx: np.ndarray) -> tuple[np.ndarray, dict]:
        """One block of actions (len(idx), action_block, A) for the live episodes `idx` (rows of obs/states)."""
        ...


class _PlannerPolicy:
    """Shared machinery: a jitted batched plan over episodes, warm starts, graph excess per goal."""

    def __init__(self, cfg: ControlConfig, action_dim: int, graph: goal_graph.LatentGraph | None):
        validate_control(cfg)
        self.cfg = cfg
        self.action_block = cfg.action_block
        self.block_dim = action_dim * cfg.action_block
        self.planner = get_planner(cfg.planner)
        self.planner_cfg = cfg.planner_config(self.block_dim)
        self.cost = cost_lib.make_cost({"goal": (goal_term(cfg), 1.0)})
        self.graph = graph
        self.nodes = jnp.asarray(graph.nodes) if graph is not None else jnp.zeros((1, 1), jnp.float32)
        self.plans: np.ndarray | None = None
        self.safety = cfg.safety_config()
        self.hazards: dict | None = None
        self.speed_limit = cfg.speed_limit

    room_graphs: Any = None
    """When set (graph_source="explore"): `room_graphs.graph_for(task)` is each task's own goal graph
    (same node count for all; jepa_mpc.room_graph.RoomGraphs)."""
    task_graphs: list | None = None

    def set_tasks(self, tasks: Sequence[Any], layouts: Sequence[Any]) -> None:
        """Per-episode constraints (hazards, arena, speed limit) and goal graphs for the next `start`."""
        self.hazards = safety_lib.hazard_arrays(tasks, list(layouts), self.cfg.speed_limit)
        if self.room_graphs is not None and self.cfg.goal_cost == "graph":
            self.task_graphs = [self.room_graphs.graph_for(t) for t in tasks]

    node_xy: np.ndarray | None = None  # goal-graph node positions (for the hazard-aware detour search)
    margin: float = 0.0

    def _goal_ctx(self, goals: np.ndarray, graph_goals: np.ndarray | None = None) -> dict:
        """ctx rows for goal embeddings `goals`; `graph_goals`: the goals in the graph's space."""
        b = len(goals)
        graph_goals = goals if graph_goals is None else graph_goals
        hz = self.hazards
        if hz is None or len(hz["speed"]) != b:
            hz = safety_lib.empty_hazards(b, speed_limit=self.cfg.speed_limit)
        self.hazards = None
        task_graphs, self.task_graphs = self.task_graphs, None
        per_task = {}
        if self.cfg.goal_cost == "graph":
            if task_graphs is not None and len(task_graphs) != b:
                raise ValueError(f"{len(task_graphs)} task graphs for {b} goals")
            graphs = task_graphs or [self.graph] * b
            avoid = (self.cfg.safety != "none" and self.cfg.hazard_graph and self.node_xy is not None
                     and task_graphs is None)
            excess = []
            for i, g in enumerate(graph_goals):
                if avoid:
                    blocked = safety_lib.blocked_nodes(self.node_xy, {k: v[i] for k, v in hz.items()}, self.margin)
                    excess.append(safety_lib.detour_excess_avoiding(self.graph, g, blocked))
                else:
                    excess.append(goal_graph.detour_excess(graphs[i], g))
            excess = np.stack(excess)
            if task_graphs is not None:  # each episode searches its own graph's nodes
                per_task["nodes"] = jnp.asarray(np.stack([g.nodes for g in task_graphs]), jnp.float32)
        else:
            excess = np.zeros((len(goals), 1), np.float32)
        return {"goal": jnp.asarray(goals, jnp.float32), "excess": jnp.asarray(excess), **per_task,
                **{k: jnp.asarray(v) for k, v in hz.items()}}

    def _plan(self, start: jax.Array, key: jax.Array, idx: np.ndarray) -> tuple[np.ndarray, dict]:
        """Plan for the live episodes `idx` only, padded to a power of two (few compiles)."""
        n = len(idx)
        size = min(1 << (n - 1).bit_length(), len(self.plans))
        rows = np.concatenate([idx, np.full(size - n, idx[0])])  # pad with copies of a live episode
        start = jnp.concatenate([start, jnp.repeat(start[:1], size - n, axis=0)])
        t0 = time.perf_counter()
        actions, info = self._plan_batch(
            start, {k: v[rows] for k, v in self.ctx.items()}, jnp.asarray(self.plans[rows]),
            jax.random.split(key, size),
        )
        actions = np.asarray(jax.block_until_ready(actions))[:n]
        latency = time.perf_counter() - t0
        self.plans[idx] = np.asarray(jax.vmap(shift_plan)(jnp.asarray(actions)))
        block = actions[:, 0].reshape(n, self.action_block, -1)
        return block, {
            "latency_s": latency,
            "final_cost": np.asarray(info["final_cost"])[:n],
            "infeasible": np.asarray(info["infeasible"])[:n],
            "predicted_violation": np.asarray(info["violation"])[:n],
            "planned_path": np.asarray(info["path"])[:n],
        }

    def _reset_plans(self, b: int) -> None:
        self.plans = np.zeros((b, self.cfg.horizon, self.block_dim), np.float32)


class LatentPlannerPolicy(_PlannerPolicy):
    """Plan in the learned latent space: encode obs and goal, roll the predictor, cost on latents."""

    def __init__(self, model: Any, cfg: ControlConfig, graph: goal_graph.LatentGraph | None, probe: Any = None,
                 graph_readout: tuple[np.ndarray, np.ndarray] | None = None):
        """`graph_readout` (W, b): the linear map latent -> graph space (cfg.graph_space == "probe")."""
        raw_dim = model.action_dim // cfg.action_block
        if raw_dim * cfg.action_block != model.action_dim:
            raise ConfigError(
                f"--action-block {cfg.action_block} does not divide the model's action input ({model.action_dim})"
            )
        super().__init__(cfg, raw_dim, graph)
        if probe is None and cfg.safety != "none":
            raise ConfigError(f"--control.safety {cfg.safety} needs a probe (run `jepa-mpc probe {model.run_dir}`)")
        self.model = model
        self.probe = probe
        self.margin = cfg.safety_buffer + (cfg.safety_margin * probe.position_rmse if probe is not None else 0.0)
        encode_p = model.encode_p
        self._encode = jax.jit(lambda state, obs: encode_p(state, obs))
        cost, planner, pcfg, nodes, rollout_p = self.cost, self.planner, self.planner_cfg, self.nodes, model.rollout_p
        safety_cfg, margin, points, per_metre = self.safety, self.margin, cfg.interp_points, cfg.safety_motion
        probe_arrays = probe.arrays() if probe is not None else None
        from jepa_mpc.probe import apply_probe

        self.graph_readout = None
        if graph is not None and cfg.graph_space == "probe":
            if graph_readout is None:
                raise ConfigError("--control.graph-space probe needs the linear read-out the graph was built with")
            w, b = (jnp.asarray(x) for x in graph_readout)
            self.graph_readout = jax.jit(lambda z: z @ w + b)
            self.cost = cost = cost_lib.make_cost({"goal": (goal_term(cfg, self.graph_readout, graph.scale), 1.0)})
            self.node_xy = np.asarray(graph.nodes)
        elif probe is not None and graph is not None:
            self.node_xy = np.asarray(jax.jit(apply_probe)(probe_arrays, jnp.asarray(graph.nodes)))[:, :2]

        @jax.jit
        def plan_batch(params, probe_p, z0, ctx, init, keys):
            def one(z0, ctx, init, key):
                ctx = {"nodes": nodes, **ctx}  # per-episode nodes (task graphs) win

                def objective(a):
                    z = rollout_p(params, z0, a)
                    c = cost(z, a, ctx)
                    if probe_p is None:  # no read-out: no constraint can be evaluated
                        h = a.shape[0]
                        return c, jnp.full((h, len(safety_lib.CONSTRAINTS)), -1.0), jnp.zeros((h, 2))
                    xyv, xyv0 = apply_probe(probe_p, z), apply_probe(probe_p, z0)
                    pos, vel = safety_lib.interpolate_blocks(xyv0, xyv, points)
                    margins = safety_lib.motion_margin(xyv0[:2], xyv[:, :2], margin, per_metre)
                    return c, safety_lib.block_constraints(pos, vel, ctx, margins), xyv[:, :2]

                return safety_lib.plan_safely(planner, objective, init, key, pcfg, safety_cfg)

            return jax.vmap(one)(z0, ctx, init, keys)

        self._plan_batch = lambda *args: plan_batch(model.state, probe_arrays, *args)

    def encode(self, obs: np.ndarray) -> jax.Array:
        return self._encode(self.model.state, jnp.asarray(obs))

    def start(self, obs, goal_obs, goal_states, key):
        goals = np.asarray(self.encode(goal_obs))
        graph_goals = None if self.graph_readout is None else np.asarray(self.graph_readout(goals))
        self.ctx = self._goal_ctx(goals, graph_goals)
        self._reset_plans(len(obs))

    def act(self, obs, states, key, idx):
        return self._plan(self.encode(obs), key, idx)


class OraclePlannerPolicy(_PlannerPolicy):
    """The same planner on the true simulator: batched MuJoCo rollouts, cost on physical position
    (the family's goal features, e.g. Reacher's joint angles, Push-T's block pose (x, y, angle); constraints
    read its declared position and velocity: `mujoco_block_simulator` packs them after the goal features).

    The goal graph (for goal_cost="graph") is built the same way, from the dataset's positions.
    """

    def __init__(self, simulate: Callable[[np.ndarray, np.ndarray], np.ndarray], cfg: ControlConfig,
                 graph: goal_graph.LatentGraph | None, action_dim: int = 2, goal_dim: int = 2):
        super().__init__(cfg, action_dim, graph)
        cost, planner, pcfg, nodes = self.cost, self.planner, self.planner_cfg, self.nodes
        horizon, block = cfg.horizon, cfg.action_block
        # A simulator marked `per_step` returns every env step's (goal, position, velocity) (N, H, block, goal_dim + 4):
        # constraints are then checked at each env step; otherwise (N, H, goal_dim + 2) block ends, interpolated.
        per_step = bool(getattr(simulate, "per_step", False))
        position = getattr(simulate, "position", slice(0, 2))
        self.goal_dim = goal_dim
        out_shape = (horizon, block, goal_dim + 4) if per_step else (horizon, goal_dim + 2)
        safety_cfg, margin, points = self.safety, cfg.safety_buffer, cfg.interp_points
        self.margin = margin
        self.node_xy = np.asarray(graph.nodes)[:, :2] if graph is not None else None

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
                    if per_step:
                        pos, vel = out[..., goal_dim : goal_dim + 2], out[..., goal_dim + 2 : goal_dim + 4]
                    else:
                        out = out[..., goal_dim : goal_dim + 2]
                        pad = jnp.zeros_like(out)
                        start = jnp.concatenate([state0[position], jnp.zeros((2,), jnp.float32)])
                        pos, vel = safety_lib.interpolate_blocks(start, jnp.concatenate([out, pad], -1), points)
                        vel = jnp.zeros_like(vel)  # unknown without per-step states
                    return cost(ends, a, ctx), safety_lib.block_constraints(pos, vel, ctx, margin), pos[:, -1]

                return safety_lib.plan_safely(planner, objective, init, key, pcfg, safety_cfg)

            return jax.vmap(one)(state0, ctx, init, keys)

        self._plan_batch = plan_batch

    def start(self, obs, goal_obs, goal_states, key):
        self.ctx = self._goal_ctx(np.asarray(goal_states)[:, : self.goal_dim])
        self._reset_plans(len(obs))

    def act(self, obs, states, key, idx):
        return self._plan(jnp.asarray(states, jnp.float32), key, idx)


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

    @property
    def violation_free(self) -> bool:
        return self.violation_steps == 0


def run_mpc(envs: Sequence[Any], tasks: Sequence[Any], policy: Policy, key: jax.Array,
            on_plan: Callable[[dict], None] | None = None, family: TaskFamily | None = None) -> list[EpisodeRecord]:
    """Run one episode per (env, task) pair in lockstep until each succeeds or runs out of steps.
    `family` (default TwoRoom) declares which state fields are the recorded path and the speed."""
    family = family if family is not None else TWOROOM
    if len(envs) != len(tasks):
        raise ValueError("one env per task")
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
    policy.start(obs, np.stack(goal_obs), np.stack(goal_states), sub)
    live = np.array([not r.success for r in records])
    while live.any():
        key, sub = jax.random.split(key)
        idx = np.flatnonzero(live)
        blocks, plan_info = policy.act(obs[idx], states[idx], sub, idx)
        if on_plan is not None:
            on_plan({**plan_info, "live": len(idx)})
        for j, i in enumerate(idx):
            env, rec = envs[i], records[i]
            rec.plans += 1
            if "infeasible" in plan_info:
                rec.infeasible_plans += int(plan_info["infeasible"][j])
                rec.planned_paths.append((rec.steps, np.asarray(plan_info["planned_path"][j]).tolist(),
                                          bool(plan_info["infeasible"][j])))
            for a in blocks[j]:
                o, _, terminated, truncated, info = env.step(a)
                rec.steps += 1
                too_fast = speed_limits[i] > 0 and float(np.hypot(*family.velocities(info["state"]))) > speed_limits[i]
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
    return records


# ------------------------------------------------------------------ true dynamics (oracle)


def mujoco_block_simulator(model: Any, frame_skip: int, action_block: int, per_step: bool = True,
                           env: Any = None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """`simulate(states (N, S), blocks (N, H, action_block * 2)) -> (goal features, position) (N, H, goal_dim + 2)`
    after each block, or with `per_step` (default; marked by `simulate.per_step`) every env step's
    `oracle_features` (goal features, position, velocity) (N, H, action_block, goal_dim + 4), so the oracle
    checks constraints at every env step.

    One batched `mujoco.rollout` over all N sequences, one thread per core (the data collector's
    simulator): the true dynamics, contacts with the walls included. `env`: the TaskFamily whose state
    conversion and collector to use (default TwoRoom); "positions" are its goal features.
    """
    env = env if env is not None else TWOROOM
    collector = env.oracle_collector(model, frame_skip)

    def simulate(states: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        n, h = blocks.shape[:2]
        steps = blocks.reshape(n, h * action_block, -1)
        out = collector.run(states, steps)["state"][:, 1:]
        if per_step:
            return oracle_features(env, out.reshape(n, h, action_block, -1))
        return oracle_features(env, out[:, action_block - 1 :: action_block])[..., : env.goal_dim + 2]

    simulate.per_step = per_step
    simulate.position = env.position  # which fields of a start state are its position (interpolation)
    return simulate


def oracle_features(env: TaskFamily, states: np.ndarray) -> np.ndarray:
    """(..., state_dim) -> (..., goal_dim + 4): the family's declared goal features, position and velocity,
    in that order (what the oracle's cost and constraints read)."""
    return np.concatenate([env.goal_features(states), env.positions(states), env.velocities(states)], axis=-1)
