"""Goal costs: what the planner minimises to reach a goal, chosen by a tagged config.

Two kinds (``GOALS``; on the command line the subcommand ``goal:KIND``, then ``--goal.FIELD``):

* ``LatentGoal(mode)``: the straight distance of each predicted latent to the goal embedding.
  Greedy: it stalls where a wall stands between the agent and the goal.
* ``GraphGoal(source, mode, nodes, explore_episodes, explore_start, avoid_hazards)`` (the default): the straight
  distance plus the *detour excess* of a reachability graph (jepa_mpc/goal_graph.py), which sees
  walls. ``source`` is what the graph is built from: ``data`` (the training dataset's episodes),
  ``explore`` (reward-free exploration of each task's own room first, from the task's start by default,
  jepa_mpc/room_graph.py) or
  ``probe`` (the dataset's episodes mapped by a linear position read-out fitted on them).

``mode`` weights the planning blocks: ``terminal`` (the last block only), ``all`` (the mean over
blocks, the last counting once more) or, for graphs, ``mixed`` (straight distance on all blocks,
the graph's detour at the last only; the default).

A config's ``build(space, seed)`` returns the runtime ``GoalCost``: its cost terms (composed by
``jepa_mpc.costs.make_cost``), the graph nodes the planner closes over, and the per-episode ctx
(goal, detour excess per node). ``space`` says what points are: the world model's latents
(``LatentSpace``) or the true goal features of the simulator's state (``StateSpace``, the oracle).

A new goal cost: a frozen dataclass with a ``kind``, ``validate()`` and ``build(space, seed)``
returning an object with ``terms``/``nodes``/``set_tasks``/``episode_ctx``, added to ``GOALS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal, Protocol, Union

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from jepa_mpc import costs as cost_lib
from jepa_mpc import goal_graph
from jepa_mpc.errors import ConfigError
from jepa_mpc.room_graph import EXPLORE_STARTS

GOAL_MODES = ("terminal", "all", "mixed")


def goal_weights(horizon: int, mode: str) -> jax.Array:
    """(H,) goal weights per block: "terminal" (last only) or "all"/"mixed" (mean + last once more)."""
    last = cost_lib.step_weights(horizon, "terminal")
    return last if mode == "terminal" else last + cost_lib.step_weights(horizon, "all") / horizon


def _straight(z_seq: jax.Array, goal: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.square(z_seq - goal), axis=-1) + 1e-12)


# ----------------------------------------------------------------------------- spaces


class LatentSpace:
    """Goal costs on the world model's latents: dataset episodes are encoded with ``encode``."""

    def __init__(self, encode: Callable[[np.ndarray], Any], obs_key: str, dataset: Any, env: Any, layout: Any,
                 to_points: Callable[[np.ndarray], np.ndarray] | None = None):
        """``to_points``: latents (N, D) -> safety points (N, P, 2) (the probe and the family's safety geometry),
        for hazard-aware detours."""
        self.encode, self.obs_key, self.dataset, self.env, self.layout = encode, obs_key, dataset, env, layout
        self.to_points = to_points

    def episodes(self) -> list[np.ndarray]:
        return encode_episodes(self.encode, self.dataset.arrays[self.obs_key])

    def positions(self) -> np.ndarray | None:
        """The dataset's positions (E, T, 2), the target of a linear read-out (source "probe")."""
        return self.env.positions(self.dataset.arrays["state"])

    def explore_embedder(self) -> Callable[[np.ndarray], np.ndarray]:
        from jepa_mpc import room_graph

        if self.obs_key == "pixels":
            size = self.dataset.meta.get("render_size") or 64
            return room_graph.pixel_embedder(self.env, self.layout, size, self.encode)
        return room_graph.state_embedder(self.encode)


def position_points(env: Any, layout: Any, xy: np.ndarray) -> np.ndarray:
    """Goal features or positions (N, k) -> the family's safety points they fix (N, P, 2)
    (`TaskFamily.goal_safety_points`); the position itself without a family's safety geometry."""
    if not hasattr(env, "goal_safety_points"):
        return np.asarray(xy, np.float64)[:, None, :2]
    return env.goal_safety_points(xy, layout)


class StateSpace:
    """Goal costs on the simulator's goal features (the oracle): no encoder, no read-out needed."""

    def __init__(self, env: Any, dataset: Any, layout: Any):
        self.env, self.dataset, self.layout = env, dataset, layout

    def episodes(self) -> list[np.ndarray]:
        return [self.env.goal_features(e) for e in self.dataset.arrays["state"]]

    def positions(self) -> None:
        return None  # the points are positions already: a "probe" graph is the "data" graph

    def to_points(self, features: np.ndarray) -> np.ndarray:
        """Goal features (N, goal_dim) -> the safety points (N, P, 2) they fix."""
        return position_points(self.env, self.layout, features)

    def explore_embedder(self) -> Callable[[np.ndarray], np.ndarray]:
        return self.env.goal_features


def encode_episodes(encode, observations: np.ndarray, batch: int = 4096) -> list[np.ndarray]:
    """Embeddings (T, D) of every dataset episode (E, T, *obs), with `encode(obs batch) -> (B, D)`."""
    e, t = observations.shape[:2]
    flat = observations.reshape((e * t,) + observations.shape[2:])
    z = np.concatenate([np.asarray(encode(flat[i : i + batch])) for i in range(0, len(flat), batch)])
    return list(z.reshape(e, t, -1))


# --------------------------------------------------------------------- runtime goal costs


class GoalCost(Protocol):
    nodes: jax.Array
    """Graph nodes the planner closes over ((1, 1) zeros without a graph); ctx["nodes"] per episode wins."""
    explored_steps: int | None

    def terms(self, horizon: int) -> dict[str, tuple[cost_lib.Term, float]]:
        """Named (term, weight) pairs for ``costs.make_cost``; each term maps (H, D) points to (H,)."""
        ...

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """The tasks of the next ``episode_ctx`` call (e.g. to pick each task's room graph)."""
        ...

    def episode_ctx(self, goals: np.ndarray, hazards: dict | None = None, margin: float = 0.0,
                    starts: np.ndarray | None = None, min_margin: float | None = None, routes: bool = False) -> dict:
        """ctx rows for goal points (B, D); ``hazards`` (padded arrays, safety on) may reshape the cost.

        With ``starts`` (B, D) and ``min_margin`` < ``margin``, a goal cost that sees hazards may fit each
        episode's safety margin (ctx["margin"] (B,)): the widest its graph leaves between start and goal,
        within [min_margin, margin]. With ``routes`` (a goal cost with a graph), also each episode's routes
        to its goal over the graph (ctx["route_next"], ctx["route_steps"] (B, N), numpy; `goal_graph.goal_routes`)
        for the high level of `jepa_mpc.hierarchy`."""
        ...


class StraightGoalCost:
    """Built ``LatentGoal``: distance to the goal point, weighted per block."""

    explored_steps = None

    def __init__(self, mode: str):
        self.mode = mode
        self.nodes = jnp.zeros((1, 1), jnp.float32)

    def terms(self, horizon):
        return {"goal": (cost_lib.goal_distance("l2", weights=goal_weights(horizon, self.mode)), 1.0)}

    def set_tasks(self, tasks):
        pass

    def episode_ctx(self, goals, hazards=None, margin=0.0, starts=None, min_margin=None, routes=False):
        if routes:
            raise ConfigError("--control.hierarchy graph plans its subgoals on the goal graph: use goal:graph")
        return {"goal": jnp.asarray(goals, jnp.float32), "excess": jnp.asarray(np.zeros((len(goals), 1), np.float32))}


class GraphGoalCost:
    """Built ``GraphGoal``: straight distance + the graph's detour excess at the point's cell.

    ``graph`` is shared by all episodes, or ``room_graphs.graph_for(task)`` gives each task its own
    (source "explore"); ``readout`` (W, b) maps latents into the graph's space (source "probe"),
    ``node_points`` (N, P, 2) are the nodes' safety points (for routing the detour search around hazards).
    """

    def __init__(self, mode: str, graph: goal_graph.LatentGraph | None = None, room_graphs: Any = None,
                 readout: tuple[np.ndarray, np.ndarray] | None = None, node_points: np.ndarray | None = None,
                 avoid_hazards: bool = True, hazard_widen: float = 1.0, hazard_weight: float = 0.0):
        if (graph is None) == (room_graphs is None):
            raise ValueError("GraphGoalCost: give either a graph or room graphs")
        self.mode, self.graph, self.room_graphs, self.node_points = mode, graph, room_graphs, node_points
        self.avoid_hazards, self.hazard_widen, self.hazard_weight = avoid_hazards, hazard_widen, hazard_weight
        self.nodes = jnp.asarray(graph.nodes) if graph is not None else jnp.zeros((1, 1), jnp.float32)
        self.readout = None
        if readout is not None:
            w, b = (jnp.asarray(x) for x in readout)
            self.readout = jax.jit(lambda z: z @ w + b)
        self._task_graphs: list | None = None

    @property
    def node_positions(self) -> np.ndarray | None:
        """(N, k) the data's mean recorded position (`TaskFamily.positions`) in each node's cell, to show
        subgoals (None for explored room graphs and graphs built without the positions)."""
        return None if self.graph is None else self.graph.positions

    @property
    def explored_steps(self) -> int | None:
        return None if self.room_graphs is None else self.room_graphs.explored_steps

    def terms(self, horizon):
        weights, mode, readout = goal_weights(horizon, self.mode), self.mode, self.readout
        scale = self.graph.scale if self.graph is not None else 1.0

        def one(z, goal, nodes, excess):
            return goal_graph.graph_goal_distance(z, goal, nodes, excess, None if readout is None else readout(z), scale)

        def fn(z_seq, a_seq, ctx):
            graph_dist = jax.vmap(one, in_axes=(0, None, None, None))
            if mode in ("terminal", "mixed"):  # node search for the last point only
                last = graph_dist(z_seq[-1:], ctx["goal"], ctx["nodes"], ctx["excess"])[0]
                if mode == "terminal":
                    return jnp.zeros(z_seq.shape[:1], jnp.float32).at[-1].set(last * weights[-1])
                straight = _straight(z_seq, ctx["goal"])
                return (straight * weights).at[-1].add(last - straight[-1])
            return graph_dist(z_seq, ctx["goal"], ctx["nodes"], ctx["excess"]) * weights

        return {"goal": (cost_lib.Term(fn), 1.0)}

    def set_tasks(self, tasks):
        if self.room_graphs is not None:
            self._task_graphs = [self.room_graphs.graph_for(t) for t in tasks]

    def episode_ctx(self, goals, hazards=None, margin=0.0, starts=None, min_margin=None, routes=False):
        from jepa_mpc import safety as safety_lib

        if routes and self.readout is not None:
            raise ConfigError("--control.hierarchy graph needs a goal graph of embeddings (--goal.source data or "
                              "explore), not of the probe's positions")
        b = len(goals)
        graph_goals = goals if self.readout is None else np.asarray(self.readout(goals))
        graph_starts = starts if starts is None or self.readout is None else np.asarray(self.readout(starts))
        task_graphs, self._task_graphs = self._task_graphs, None
        if self.room_graphs is not None and task_graphs is None:
            raise ValueError("GraphGoalCost: set_tasks(tasks) first (explored room graphs are per task)")
        if task_graphs is not None and len(task_graphs) != b:
            raise ValueError(f"{len(task_graphs)} task graphs for {b} goals")
        graphs = task_graphs or [self.graph] * b
        avoid = hazards is not None and self.avoid_hazards and self.node_points is not None and task_graphs is None
        fit = avoid and graph_starts is not None and min_margin is not None and min_margin < margin
        by_edge = avoid and (fit or self.hazard_widen > 1.0 or self.hazard_weight > 0.0)
        excess, margins, route = [], np.full(b, margin, np.float32), []
        rows, cols = goal_graph.edges(self.graph) if by_edge else (None, None)  # (avoid: the one shared graph)
        for i, g in enumerate(graph_goals):
            hz = {k: v[i] for k, v in hazards.items()} if avoid else None
            if not by_edge:  # nodes within the margin of a hazard leave the graph
                blocked = safety_lib.blocked_nodes(self.node_points, hz, margin) if avoid else None
                excess.append(goal_graph.detour_excess(graphs[i], g, blocked))
                if routes:
                    route.append(goal_graph.goal_routes(graphs[i], g, blocked))
                continue
            clearance = safety_lib.edge_clearance(self.node_points, rows, cols, hz)
            if fit:  # the widest way the hazards leave, if narrower than the margin
                widest = goal_graph.bottleneck_clearance(self.graph, clearance, goal_graph.nearest_node(
                    self.graph, graph_starts[i]), goal_graph.nearest_node(self.graph, g))
                margins[i] = np.clip(widest, min_margin, margin)
            factor = safety_lib.clearance_weights(clearance, float(margins[i]), self.hazard_widen,
                                                  self.hazard_weight or np.inf)
            excess.append(goal_graph.detour_excess(self.graph, g, edge_factor=factor))
            if routes:
                route.append(goal_graph.goal_routes(self.graph, g, edge_factor=factor))
        ctx = {"goal": jnp.asarray(goals, jnp.float32), "excess": jnp.asarray(np.stack(excess))}
        if routes:
            ctx["route_next"], ctx["route_steps"] = (np.stack(r) for r in zip(*route))
        if fit:
            ctx["margin"] = jnp.asarray(margins)
        if task_graphs is not None:  # each episode searches its own graph's nodes
            ctx["nodes"] = jnp.asarray(np.stack([g.nodes for g in task_graphs]), jnp.float32)
        return ctx


def _recorded_positions(space: Any) -> list[np.ndarray] | None:
    """The dataset's recorded positions (`TaskFamily.positions`), per episode (T, k); None without states."""
    states = getattr(space.dataset, "arrays", {}).get("state")
    if states is None or not hasattr(space.env, "positions"):
        return None
    return list(space.env.positions(states))


# ------------------------------------------------------------------------------- configs


def _check_mode(mode: str, modes: Sequence[str], kind: str) -> None:
    if mode not in modes:
        raise ConfigError(f"--goal.mode must be one of {', '.join(modes)} for goal:{kind}, got {mode!r}")


@dataclasses.dataclass(frozen=True)
class LatentGoal:
    """Straight latent distance to the goal embedding (greedy; stalls at walls)."""

    kind: ClassVar[str] = "latent"
    mode: Literal["terminal", "all"] = "all"
    """terminal: the last block only; all: the mean over blocks, the last counting once more."""

    def validate(self) -> None:
        _check_mode(self.mode, ("terminal", "all"), self.kind)

    def build(self, space: Any = None, seed: int = 0) -> StraightGoalCost:
        self.validate()
        return StraightGoalCost(self.mode)


@dataclasses.dataclass(frozen=True)
class GraphGoal:
    """Straight distance + the detour excess of a reachability graph (sees walls)."""

    kind: ClassVar[str] = "graph"
    source: Literal["data", "explore", "probe"] = "data"
    """data: the training dataset's episodes; explore: `explore_episodes` episodes of reward-free
    exploration of each task's own room first (for rooms the data never showed); probe: the dataset's
    episodes through a linear position read-out fitted on them (TwoRoom: 37.5 % vs 81 % on 32 hard tasks)."""
    mode: Literal["terminal", "all", "mixed"] = "mixed"
    """terminal | all (every block, the last counting double) | mixed (straight distance on all
    blocks, the graph's detour at the last)."""
    nodes: int = 1500
    """Graph nodes (farthest-point samples of the points)."""
    explore_episodes: int = 64
    """source=explore: exploration episodes per task start (or per room with explore_start=reset; the
    dataset's own policy and episode length)."""
    explore_start: Literal["task-start", "reset"] = "task-start"
    """source=explore: where every exploration episode starts. task-start: the task's own start state,
    then the agent moves only by actions (honest exploration; one graph per task start). reset: resets
    the agent to uniform free positions of the true room (a resettable simulator; one graph per room)."""
    split_cells: float = 0.0
    """Metres (source data; 0: off): split a node's cell when its data points' positions fall into groups
    this far apart (the two sides of a thin wall), so the graph has no edge through the wall
    (`goal_graph.GraphConfig.split_cells`). The dataset's recorded positions are used, as by the probe."""
    avoid_hazards: bool = True
    """With safety on: the detour search routes around hazards as it does around walls. By default nodes
    within the planner's base margin of a hazard leave the graph; with hazard_widen > 1, hazard_weight > 0
    or --control.safety-min-margin, each edge is checked along its length and priced instead."""
    hazard_widen: float = 1.0
    """With avoid_hazards: edges passing closer to a hazard than this many margins cost more the closer
    they pass (linearly, up to hazard_weight at 1 margin), so detours prefer wide passages. 1: no widening."""
    hazard_weight: float = 0.0
    """With avoid_hazards: the cost factor (>= 1) of edges within the margin, which keeps them passable at a
    price; 0: removed instead, so a hazard that narrows every way to the goal cuts the graph there."""

    def validate(self) -> None:
        _check_mode(self.mode, GOAL_MODES, self.kind)
        if self.source not in ("data", "explore", "probe"):
            raise ConfigError(f"--goal.source must be data, explore or probe, got {self.source!r}")
        if self.explore_start not in EXPLORE_STARTS:
            raise ConfigError(f"--goal.explore-start must be {' or '.join(EXPLORE_STARTS)}, got {self.explore_start!r}")
        if self.split_cells < 0:
            raise ConfigError(f"--goal.split-cells must be >= 0 (metres; 0: off), got {self.split_cells}")
        if not (self.hazard_widen >= 1.0 and (self.hazard_weight == 0.0 or self.hazard_weight >= 1.0)):
            raise ConfigError(f"--goal.hazard-widen must be >= 1 and --goal.hazard-weight 0 (remove) or >= 1, got "
                              f"{self.hazard_widen}, {self.hazard_weight}")
        if self.nodes < 2 or self.explore_episodes <= 0:
            raise ConfigError(f"--goal.nodes must be >= 2 and --goal.explore-episodes > 0, got {self.nodes}, "
                              f"{self.explore_episodes}")

    def build(self, space: LatentSpace | StateSpace | None, seed: int = 0) -> GraphGoalCost:
        """Build the graph (from the dataset, by exploring each task's room, or through a read-out)."""
        self.validate()
        if space is None:
            raise ConfigError("goal:graph needs a dataset or an environment to build its graph from "
                              "(use goal:latent for a graph-free goal cost)")
        if self.source == "explore":
            from jepa_mpc import room_graph

            explore = room_graph.explore_config(space.dataset.meta, self.explore_episodes, seed)
            graphs = room_graph.RoomGraphs(space.env, space.layout, space.explore_embedder(), explore, self.nodes,
                                           start=self.explore_start)
            return GraphGoalCost(self.mode, room_graphs=graphs, avoid_hazards=self.avoid_hazards,
                             hazard_widen=self.hazard_widen, hazard_weight=self.hazard_weight)
        config = goal_graph.GraphConfig(num_nodes=self.nodes, seed=seed, split_cells=self.split_cells)
        episodes = space.episodes()
        positions = space.positions() if self.source == "probe" else None
        if positions is None:  # the recorded positions split cells (split_cells) and place nodes
            graph = goal_graph.build_graph(episodes, config, _recorded_positions(space))
            node_points = None if space.to_points is None else space.to_points(graph.nodes)
            return GraphGoalCost(self.mode, graph, node_points=node_points, avoid_hazards=self.avoid_hazards,
                                 hazard_widen=self.hazard_widen, hazard_weight=self.hazard_weight)
        flat = np.concatenate(episodes)
        readout = goal_graph.fit_linear_readout(flat, positions.reshape(len(flat), 2))
        points = [z @ readout[0] + readout[1] for z in episodes]
        graph = goal_graph.build_graph(points, config)
        graph = dataclasses.replace(graph, scale=goal_graph.metric_scale(flat, np.concatenate(points), seed=seed))
        return GraphGoalCost(self.mode, graph, readout=readout,
                             node_points=position_points(space.env, space.layout, np.asarray(graph.nodes)),
                             avoid_hazards=self.avoid_hazards,
                             hazard_widen=self.hazard_widen, hazard_weight=self.hazard_weight)


GOALS: dict[str, type] = {cls.kind: cls for cls in (GraphGoal, LatentGoal)}

GoalConfig = Union[tuple(Annotated[cls, tyro.conf.subcommand(kind)] for kind, cls in GOALS.items())]  # noqa: UP007
"""Any goal cost's config, a tagged union: `goal:graph` (default) or `goal:latent`, then `--goal.FIELD`."""

__all__ = ["GOALS", "GOAL_MODES", "GoalConfig", "GoalCost", "GraphGoal", "GraphGoalCost", "LatentGoal",
           "LatentSpace", "StateSpace", "StraightGoalCost", "encode_episodes", "goal_weights"]
