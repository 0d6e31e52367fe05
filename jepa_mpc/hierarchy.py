"""Two-level planning: a high level that picks the next subgoal on the goal graph, the MPC planner below it.

The flat planner sees the goal through its cost only, a horizon of a few blocks ahead. With
``--control.hierarchy graph`` the high level plans the whole way first, on the reachability graph
the goal cost is built on (`jepa_mpc.goal_graph`; nodes are embeddings of the reward-free data,
edges join cells the data moved between):

1. at the start of an episode, the shortest route from every node to the goal's cell (the detour
   cost's routes, with hazards given at plan time priced or removed as there), its length counted in
   env steps at the data's pace (latent length / the data's median motion per step, `LatentGraph.steps`:
   an estimate; `goal_graph.goal_routes`);
2. before every plan, the node of the agent's current cell (the nearest node with a route to the goal)
   and, along its route, the first node at least ``ahead`` steps closer to the goal: the subgoal;
3. the low level (any planner, with its constraints) plans to that node's embedding with the plain
   distance; once the goal is within ``ahead`` steps of the route (or no route leads to it), to the goal
   itself with the usual goal cost.

Both levels re-plan at every MPC step, so a subgoal the agent cannot reach is replaced as soon as the
agent's cell changes. The subgoal sequence is explicit and recorded per episode ((step, node, the data's
mean recorded position in the node's cell) at every change, drawn in videos; no position for graphs built
by exploration, which record none).
"""

from __future__ import annotations

import numpy as np

from jepa_mpc import goal_graph

HIERARCHIES = ("none", "graph")
FINAL_GOAL = -1
"""`subgoal_nodes`' value for "plan to the goal itself"."""


def current_cells(keys: np.ndarray, nodes: np.ndarray, reachable: np.ndarray | None = None) -> np.ndarray:
    """(B,) the node nearest to each key (B, D); ``nodes`` (N, D) shared or (B, N, D) per episode. With
    ``reachable`` (B, N) bool, among each episode's nodes that have a route to its goal (an agent whose own
    node is cut off, e.g. within a hazard's margin, takes the nearest that is not; all nodes where none is)."""
    keys, nodes = np.asarray(keys, np.float32), np.asarray(nodes, np.float32)
    if nodes.ndim == 2:
        d = np.sum(nodes**2, axis=1)[None] - 2.0 * keys @ nodes.T
    else:
        d = np.sum(nodes**2, axis=2) - 2.0 * np.einsum("bd,bnd->bn", keys, nodes)
    if reachable is not None:
        usable = reachable & reachable.any(axis=1, keepdims=True) | ~reachable.any(axis=1, keepdims=True)
        d = np.where(usable, d, np.inf)
    return np.argmin(d, axis=1)


def subgoal_nodes(cells: np.ndarray, route_next: np.ndarray, route_steps: np.ndarray, ahead: float) -> np.ndarray:
    """(B,) the subgoal node of each episode, or FINAL_GOAL.

    ``cells`` (B,) current nodes; ``route_next``, ``route_steps`` (B, N): each episode's routes to its goal
    (`goal_graph.goal_routes`). The subgoal is the first node on the current node's route that is at least
    ``ahead`` steps nearer the goal; FINAL_GOAL where the goal's cell is within ``ahead`` steps or no route
    leads to it."""
    out = np.full(len(cells), FINAL_GOAL, np.int64)
    for b, node in enumerate(np.asarray(cells, np.int64)):
        nxt, steps = route_next[b], route_steps[b]
        target = steps[node] - ahead
        if nxt[node] == goal_graph.NO_ROUTE or not np.isfinite(steps[node]) or target <= 0:
            continue
        while steps[node] > target:
            node = nxt[node]
        out[b] = node
    return out


__all__ = ["FINAL_GOAL", "HIERARCHIES", "current_cells", "subgoal_nodes"]
