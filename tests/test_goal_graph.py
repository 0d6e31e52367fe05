"""The reachability-graph goal cost sees a wall that the straight latent distance does not."""

import jax.numpy as jnp
import numpy as np

from jepa_mpc.goal_graph import GraphConfig, build_graph, detour_excess, graph_goal_distance

GAP = 0.07  # half-width of the forbidden band around the wall x = 0
DOOR = 0.1  # |y| < DOOR is the door


def _two_room_walks(n_episodes=300, steps=100, seed=0):
    """Random walks in [-1,1]^2 that cannot cross x = 0 except through the door."""
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(n_episodes):
        p = rng.uniform(-0.95, 0.95, 2)
        while abs(p[0]) < GAP:
            p = rng.uniform(-0.95, 0.95, 2)
        traj = [p]
        for _ in range(steps):
            q = np.clip(p + rng.normal(0, 0.05, 2), -0.95, 0.95)
            blocked = (abs(q[0]) < GAP or np.sign(q[0]) != np.sign(p[0])) and abs(q[1]) > DOOR
            p = p if blocked else q
            traj.append(p)
        episodes.append(np.asarray(traj, np.float32))
    return episodes


def test_graph_cost_sees_the_wall_and_matches_straight_distance_in_free_space():
    graph = build_graph(_two_room_walks(), GraphConfig(num_nodes=600))
    goal = np.array([0.5, 0.8], np.float32)
    excess = jnp.asarray(detour_excess(graph, goal))
    nodes = jnp.asarray(graph.nodes)

    def cost(xy):
        return float(graph_goal_distance(jnp.asarray(xy, jnp.float32), jnp.asarray(goal), nodes, excess))

    # Behind the wall: straight distance 0.6, the way through the door ~1.74.
    behind = cost([-0.1, 0.8])
    assert behind > 1.4, behind
    # Same room as the goal: close to the straight distance.
    assert abs(cost([0.1, 0.8]) - 0.4) < 0.1
    # Moving from behind the wall towards the door lowers the cost (no local minimum at the wall).
    assert cost([-0.1, 0.0]) < behind
    assert cost([0.3, 0.0]) < cost([-0.1, 0.0])
    assert np.all(np.asarray(excess) >= 0)


def test_split_cells_remove_edges_through_a_thin_wall():
    """Few, large cells straddle the wall, so transitions on either side join them: wall-crossing edges.
    Split by the points' positions, every edge joins points that were a step apart."""
    walks = _two_room_walks(n_episodes=150)
    coarse = GraphConfig(num_nodes=60, seed=0)

    def wall_crossings(graph, cfg):
        points = np.concatenate(walks)
        from jepa_mpc.goal_graph import edges, nearest_nodes

        cells = nearest_nodes(points, graph.nodes)
        side = np.array([np.sign(points[cells == n, 0].mean()) if np.any(cells == n) else 0 for n in range(graph.num_nodes)])
        far = np.array([np.abs(points[cells == n, 1]).min() > DOOR + 0.05 if np.any(cells == n) else False
                        for n in range(graph.num_nodes)])
        rows, cols = edges(graph)
        return int(np.sum((side[rows] != side[cols]) & far[rows] & far[cols]))

    plain = build_graph(walks, coarse)
    split_cfg = GraphConfig(num_nodes=60, seed=0, split_cells=0.1)
    split = build_graph(walks, split_cfg, positions=walks)  # here the points are the positions
    assert split.num_nodes > plain.num_nodes
    assert wall_crossings(plain, coarse) > 0
    assert wall_crossings(split, split_cfg) == 0
    goal = np.array([0.5, 0.8], np.float32)
    behind = np.array([-0.5, 0.8], np.float32)
    cell = lambda g: int(np.argmin(np.linalg.norm(g.nodes - behind, axis=1)))  # noqa: E731
    assert detour_excess(split, goal)[cell(split)] > 0.5  # the way round through the door


def test_nearest_nodes_matches_brute_force_at_every_size():
    from jepa_mpc.goal_graph import nearest_nodes

    rng = np.random.default_rng(0)
    nodes = rng.normal(size=(40, 6)).astype(np.float32)
    for n in (1, 2, 5, 300):  # one goal, a few, more than a small chunk
        points = rng.normal(size=(n, 6)).astype(np.float32)
        brute = np.argmin(((points[:, None] - nodes[None]) ** 2).sum(-1), axis=1)
        np.testing.assert_array_equal(nearest_nodes(points, nodes, chunk=128), brute)
