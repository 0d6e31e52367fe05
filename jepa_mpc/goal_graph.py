"""A reachability graph over embeddings of the reward-free data: a goal cost that sees walls.

A greedy goal cost (distance of the predicted latent to the goal latent) has a local minimum
at a wall between the agent and the goal: every short plan that heads for the door first ends
farther from the goal. The data, though, show which latents follow which. We

1. pick `num_nodes` node embeddings from the dataset (farthest-point sampling, so they cover
   the visited region evenly),
2. join two nodes when some recorded transition goes from one node's cell to the other's
   (edge length = distance between the node embeddings),
3. at planning time, run Dijkstra from the goal's cell, and turn graph distance into a
   *detour excess* per node: excess_n = d_graph(n, goal) - ||node_n - z_goal|| >= 0.

The goal cost of a predicted latent z is then ``||z - z_goal|| + excess[cell(z)]``: the straight
distance where the straight line is free (excess ~ 0), plus the length of the detour the data
say is needed where it is not (behind the wall). Nothing here knows about walls or doors:
the graph is built from embeddings and transitions only, and the goal arrives at plan time.
The same construction on physical states gives the oracle's cost.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from jepa_mpc.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class GraphConfig:
    num_nodes: int = 1500
    """Node embeddings sampled from the data (farthest-point sampling)."""
    max_points: int = 60_000
    """Embeddings considered when building the graph (a random subset beyond that)."""
    seed: int = 0
    pace_steps: int = 25
    """Window (env steps) over which the data's pace is measured: long enough that a point's noisy velocity
    averages out (a latent holding velocity moves ~3x farther per single step than its position does)."""
    split_cells: float = 0.0
    """Metres; 0: off. With the data's positions, a node's cell whose points fall into groups farther apart
    than this (single linkage), e.g. the two sides of a thin wall, becomes one node per group of at least
    `min_group` points (its latent the group's mean), so no edge joins the sides through the shared cell."""
    min_group: int = 1


@dataclasses.dataclass(frozen=True)
class LatentGraph:
    nodes: np.ndarray  # (N, D) float32
    adjacency: scipy.sparse.csr_matrix  # (N, N) symmetric edge lengths
    scale: float = 1.0  # goal-cost units per graph unit (see `metric_scale`)
    positions: np.ndarray | None = None
    """(N, k) the mean recorded position of the points in each node's cell (NaN for an empty cell), when
    `build_graph` was given the points' positions (to show where a node is, e.g. a subgoal)."""
    pace: float | None = None
    """The data's pace: median distance its points move per env step, over windows of
    `GraphConfig.pace_steps` steps (graph units per step). Edge length / pace is a temporal distance in env
    steps (`steps`), for routes (`goal_routes`)."""

    @property
    def steps(self) -> scipy.sparse.csr_matrix | None:
        """(N, N) the edges in env steps at the data's pace (None when the pace is unknown)."""
        return None if self.pace is None else (self.adjacency / self.pace).tocsr()

    @property
    def num_nodes(self) -> int:
        return self.nodes.shape[0]


@jax.jit
def _nearest_chunk(points: jax.Array, nodes: jax.Array) -> jax.Array:
    d = jnp.sum(points**2, axis=1, keepdims=True) - 2.0 * points @ nodes.T + jnp.sum(nodes**2, axis=1)[None]
    return jnp.argmin(d, axis=1)


def nearest_nodes(points: np.ndarray, nodes: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Index of the nearest node for every point (fixed-size chunks: one compile, bounded memory; fewer
    points than a chunk pad to the next power of two, so one goal is not padded to 8192 rows)."""
    n = len(points)
    chunk = min(chunk, 1 << max(n - 1, 0).bit_length())
    padded = np.zeros((-(-n // chunk) * chunk, points.shape[1]), np.float32)
    padded[:n] = points
    nodes_j = jnp.asarray(nodes, jnp.float32)
    out = [np.asarray(_nearest_chunk(jnp.asarray(padded[i : i + chunk]), nodes_j)) for i in range(0, len(padded), chunk)]
    return np.concatenate(out)[:n]


@jax.jit(static_argnums=1)
def _farthest_points_jit(points: jax.Array, k: int, first: jax.Array) -> jax.Array:
    def body(i, carry):
        mind, chosen = carry
        d = jnp.sum((points - points[chosen[i - 1]]) ** 2, axis=1)
        mind = jnp.minimum(mind, d)
        return mind, chosen.at[i].set(jnp.argmax(mind))

    chosen = jnp.zeros((k,), jnp.int32).at[0].set(first)
    mind = jnp.full((points.shape[0],), jnp.inf, jnp.float32)
    return jax.lax.fori_loop(1, k, body, (mind, chosen))[1]


def _farthest_points(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy farthest-point sampling: k indices into points that cover them evenly."""
    first = jnp.int32(rng.integers(len(points)))
    return np.asarray(_farthest_points_jit(jnp.asarray(points, jnp.float32), k, first))


def _split_cells(points: np.ndarray, xy: np.ndarray, nodes: np.ndarray, cells: np.ndarray, link: float,
                 min_group: int) -> tuple[np.ndarray, np.ndarray]:
    """Split every node's cell into groups of its points' positions (single linkage at `link` metres); each
    further group of >= min_group points becomes a node of its own at its points' mean. (nodes, cells)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    nodes, cells = list(nodes), cells.copy()
    order = np.argsort(cells, kind="stable")
    starts = np.searchsorted(cells[order], np.arange(len(nodes) + 1))
    for n in range(len(starts) - 1):
        members = order[starts[n] : starts[n + 1]]
        if len(members) < 2:
            continue
        groups = fcluster(linkage(xy[members], method="single"), t=link, criterion="distance")
        ids, counts = np.unique(groups, return_counts=True)
        by_size = np.argsort(-counts)
        for gid in ids[by_size[1:]][counts[by_size[1:]] >= min_group]:  # the largest group keeps node n
            moved = members[groups == gid]
            cells[moved] = len(nodes)
            nodes.append(points[moved].mean(axis=0))
    return np.asarray(nodes, np.float32), cells


def build_graph(episodes: list[np.ndarray], config: GraphConfig = GraphConfig(),
                positions: list[np.ndarray] | None = None) -> LatentGraph:
    """Build the graph from per-episode embedding sequences, each (T, D) in time order. With the points'
    recorded positions (per episode (T, k)) the graph keeps each node's mean position, and
    `config.split_cells` splits cells by them (k = 2)."""
    if not episodes:
        raise ConfigError("goal graph: no episodes to build it from")
    if config.num_nodes < 2:
        raise ConfigError(f"goal graph: num_nodes must be >= 2, got {config.num_nodes}")
    rng = np.random.default_rng(config.seed)
    points = np.concatenate(episodes).astype(np.float32)
    pool = points if len(points) <= config.max_points else points[rng.choice(len(points), config.max_points, replace=False)]
    k = min(config.num_nodes, len(pool))
    nodes = pool[_farthest_points(pool, k, rng)]

    cells = nearest_nodes(points, nodes)
    flat_xy = None
    if positions is not None:
        flat_xy = np.concatenate([np.asarray(p, np.float64).reshape(len(e), -1) for e, p in zip(episodes, positions)])
        if len(positions) != len(episodes) or len(flat_xy) != len(points):
            raise ConfigError(f"goal graph: {len(flat_xy)} positions for {len(points)} embeddings")
    if config.split_cells > 0 and flat_xy is not None:
        nodes, cells = _split_cells(points, flat_xy.reshape(-1, 2), nodes, cells, config.split_cells,
                                    config.min_group)
        k = len(nodes)
    ends = np.cumsum([len(ep) for ep in episodes])
    same_episode = np.ones(len(points) - 1, bool)
    same_episode[ends[:-1] - 1] = False  # no edge from one episode's last step to the next's first
    moved = same_episode & (cells[1:] != cells[:-1])
    src, dst = cells[:-1][moved], cells[1:][moved]
    pairs = np.unique(np.sort(np.stack([src, dst], axis=1), axis=1), axis=0)
    length = np.linalg.norm(nodes[pairs[:, 0]] - nodes[pairs[:, 1]], axis=1) + 1e-6
    adj = scipy.sparse.coo_matrix((length, (pairs[:, 0], pairs[:, 1])), shape=(k, k))
    node_xy = None if flat_xy is None else _cell_means(cells, flat_xy, k)
    return LatentGraph(nodes=nodes, adjacency=adj.tocsr(), positions=node_xy, pace=data_pace(episodes, config.pace_steps))


def data_pace(episodes: list[np.ndarray], window: int) -> float | None:
    """Median distance per env step the points of the episodes (each (T, D)) move over `window` steps (over
    the longest window the episodes allow; None for episodes of a single point)."""
    window = min(window, max(len(e) for e in episodes) - 1)
    if window < 1:
        return None
    moves = [np.linalg.norm(e[window:] - e[:-window], axis=1) for e in episodes if len(e) > window]
    return max(float(np.median(np.concatenate(moves))) / window, 1e-12)


def _cell_means(cells: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n, K) the mean of the points' ``values`` (P, K) over each of n cells (``cells`` (P,)); NaN when empty."""
    counts = np.bincount(cells, minlength=n).astype(np.float64)
    sums = np.stack([np.bincount(cells, values[:, j], n) for j in range(values.shape[1])], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def edges(graph: LatentGraph) -> tuple[np.ndarray, np.ndarray]:
    """(E,) first and second node of every edge, in the order of ``graph.adjacency.data`` (CSR)."""
    a = graph.adjacency.tocsr()
    return np.repeat(np.arange(a.shape[0]), np.diff(a.indptr)), a.indices.copy()


def _goal_search(graph: LatentGraph, goal: np.ndarray, blocked: np.ndarray | None, edge_factor: np.ndarray | None,
                 lengths: scipy.sparse.csr_matrix) -> tuple[scipy.sparse.csr_matrix, int, float, np.ndarray]:
    """The graph to search from one goal (D,): `lengths` (N, N) with blocked nodes removed or edges priced by
    ``edge_factor`` (see `detour_excess`), the goal's cell, the goal's distance to it, and every node's straight
    distance to the goal."""
    goal = np.asarray(goal, np.float32)
    straight = np.linalg.norm(graph.nodes - goal[None], axis=1)
    adjacency = lengths.tocsr()
    if blocked is None or not np.any(blocked):
        cell = int(nearest_nodes(goal[None], graph.nodes)[0])
        to_cell = np.linalg.norm(graph.nodes[cell] - goal)
    else:
        keep = scipy.sparse.diags((~np.asarray(blocked)).astype(np.float64))
        adjacency = (keep @ adjacency @ keep).tocsr()
        adjacency.eliminate_zeros()
        cell = int(np.argmin(np.where(blocked, np.inf, straight)))
        to_cell = straight[cell]
    if edge_factor is not None:
        if blocked is not None and np.any(blocked):
            raise ValueError("goal graph search: give blocked nodes or edge factors, not both")
        rows, cols = edges(graph)
        factor = np.asarray(edge_factor, np.float64).copy()
        factor[~np.isfinite(factor) & ((rows == cell) | (cols == cell))] = 1.0  # the goal stays reachable
        adjacency = adjacency.copy()
        adjacency.data = np.where(np.isfinite(factor), adjacency.data * factor, 0.0)
        adjacency.eliminate_zeros()
    return adjacency, cell, to_cell, straight


def detour_excess(graph: LatentGraph, goal: np.ndarray, blocked: np.ndarray | None = None,
                  edge_factor: np.ndarray | None = None) -> np.ndarray:
    """Per-node detour excess (N,) float32 for one goal embedding (D,).

    Graph distance from each node to the goal (via the goal's cell) minus the straight distance.
    Nodes that cannot reach the goal's cell get the largest finite excess seen (plus the span).
    ``blocked`` (N,) bool: nodes removed from the graph first (e.g. inside hazards given at plan
    time, ``jepa_mpc.safety.blocked_nodes``), so detours go around them as they go around walls;
    the goal's cell is then the nearest unblocked node. ``edge_factor`` (E,) >= 1, in the order of
    ``edges(graph)``: each edge costs its length times its factor (e.g. by its clearance from hazards,
    ``jepa_mpc.safety.clearance_weights``); inf removes it, except at the goal's cell.
    """
    adjacency, cell, to_cell, straight = _goal_search(graph, goal, blocked, edge_factor, graph.adjacency)
    dist = scipy.sparse.csgraph.dijkstra(adjacency, directed=False, indices=cell) + to_cell
    excess = np.maximum(dist - straight, 0.0)
    finite = np.isfinite(excess)
    cap = (excess[finite].max() if finite.any() else 0.0) + float(straight.max())
    return np.where(finite, excess, cap).astype(np.float32)


NO_ROUTE = -1


def goal_routes(graph: LatentGraph, goal: np.ndarray, blocked: np.ndarray | None = None,
                edge_factor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shortest routes to one goal (D,), with hazards handled as by `detour_excess` (the same routes as its
    detours), measured in env steps at the data's pace (`LatentGraph.steps`: an estimate, not a count):
    (next (N,) int32, steps (N,) float32). ``next[n]`` is the node after n on its route to the goal's cell
    (the cell itself for the cell, NO_ROUTE where none leads there) and ``steps[n]`` the route's length in
    env steps (inf without one)."""
    if graph.steps is None:
        raise ValueError("goal_routes: the graph has no pace (build it with build_graph from episodes of several steps)")
    adjacency, cell, _, _ = _goal_search(graph, goal, blocked, edge_factor, graph.steps)
    steps, previous = scipy.sparse.csgraph.dijkstra(adjacency, directed=False, indices=cell, return_predecessors=True)
    nxt = np.where(previous < 0, NO_ROUTE, previous).astype(np.int32)  # from the cell's side, the step toward it
    nxt[cell] = cell
    return nxt, steps.astype(np.float32)


def nearest_node(graph: LatentGraph, point: np.ndarray) -> int:
    """The index of the node nearest to one point (D,) of the graph's space."""
    return int(nearest_nodes(np.asarray(point, np.float32)[None], graph.nodes, chunk=1)[0])


def bottleneck_clearance(graph: LatentGraph, edge_clearance: np.ndarray, a: int, b: int) -> float:
    """The widest way between nodes a and b: the largest c such that a path from a to b exists along
    edges whose ``edge_clearance`` (E,, in the order of ``edges(graph)``) is >= c (edges at a and b
    exempt: an agent leaves its start and reaches its goal whatever their clearance). +inf when no
    edge on the way is constrained, -inf when a and b are not connected at all."""
    rows, cols = edges(graph)
    clearance = np.asarray(edge_clearance, np.float64).copy()
    clearance[(rows == a) | (cols == a) | (rows == b) | (cols == b)] = np.inf
    adjacency = graph.adjacency.tocsr()

    def connected(c: float) -> bool:
        sub = adjacency.copy()
        sub.data = (clearance >= c).astype(np.float64)
        sub.eliminate_zeros()
        _, labels = scipy.sparse.csgraph.connected_components(sub, directed=False)
        return bool(labels[a] == labels[b])

    levels = np.unique(clearance)  # ascending, +inf last
    if not connected(levels[0]):
        return -np.inf
    lo, hi = 0, len(levels) - 1  # connected(levels[lo]) holds; find the largest index that does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if connected(levels[mid]) else (lo, mid - 1)
    return float(levels[lo])


def fit_linear_readout(latents: np.ndarray, targets: np.ndarray, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression ``targets ~ latents @ W + b`` (closed form). Returns (W (D, K), b (K,)).

    Linear on purpose: a planner searching latents cannot exploit a linear map the way it can an
    MLP's off-manifold read-out.
    """
    x = np.concatenate([latents, np.ones((len(latents), 1), latents.dtype)], axis=1).astype(np.float64)
    reg = ridge * len(x) * np.eye(x.shape[1])
    reg[-1, -1] = 0.0
    coef = np.linalg.solve(x.T @ x + reg, x.T @ targets.astype(np.float64))
    return coef[:-1].astype(np.float32), coef[-1].astype(np.float32)


def metric_scale(latents: np.ndarray, points: np.ndarray, pairs: int = 20_000, seed: int = 0) -> float:
    """Median ratio of latent distance to graph-space distance over random pairs of data points.

    When the graph lives in another space than the goal cost (e.g. the probe's position read-out),
    the detour excess is multiplied by this to be in latent units.
    """
    rng = np.random.default_rng(seed)
    i, j = rng.integers(len(points), size=(2, pairs))
    dp = np.linalg.norm(points[i] - points[j], axis=1)
    keep = dp > np.quantile(dp, 0.1)
    dz = np.linalg.norm(latents[i] - latents[j], axis=1)
    return float(np.median(dz[keep] / dp[keep]))


def graph_goal_distance(z: jax.Array, goal: jax.Array, nodes: jax.Array, excess: jax.Array,
                        key: jax.Array | None = None, scale: float = 1.0) -> jax.Array:
    """``||z - goal|| + scale * excess[cell]`` for one latent z (D,). Pure, jittable.

    The cell is the node nearest to ``key`` (z itself, or z read out into the graph's space).
    """
    key = z if key is None else key
    # argmin ||n - k||^2 = argmin (||n||^2 - 2 n.k): a matrix product once vmapped over samples.
    cell = jnp.argmin(jnp.sum(nodes**2, axis=1) - 2.0 * (nodes @ key))
    return jnp.sqrt(jnp.sum((z - goal) ** 2) + 1e-12) + scale * excess[cell]
