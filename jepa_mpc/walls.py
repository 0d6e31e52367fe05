"""Wall diagnostic: how often a world model's predicted rollouts go through a wall the simulator stops at.

For the families with a dividing wall (TwoRoom, TwoRoomLayouts), on the rooms of a suite (TwoRoom's one
room, or every room of a TwoRoomLayouts suite, e.g. its held-out rooms), two kinds of probe case:

* **wall**: the agent at rest 8-25 cm from the dividing wall's face, at least `door_clearance` from the
  door along the wall, pushed straight at the wall at full thrust for `blocks` model steps. The simulator
  stops it at the wall. The case *crosses* when the probe's read-out of any predicted block end lies past
  the wall's centre line: the real agent's centre never comes closer to it than half the wall's
  thickness plus its radius (5-8 cm).
* **open**: the agent at rest in a free place, driven by one constant random action for `blocks` model
  steps along a real path that keeps `open_clearance` from every wall and the arena's edge.

It reports the crossing rate of the wall cases with its 95 % interval, and the distance between the read-out
of each predicted block end and the simulator's position, for wall cases against open ones. Pure numpy and
the model's own encode/rollout; the simulator is the family's env, stepped from each case's start.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from jepa_mpc.errors import ConfigError

WALL_DISTANCE = (0.08, 0.25)  # m: a wall case's start, agent centre to the wall's face


@dataclasses.dataclass(frozen=True)
class WallProbeConfig:
    """How many probe cases, how far ahead, where they start."""

    cases: int = 200
    """Wall cases in all, spread evenly over the suite's rooms (as many open cases)."""
    blocks: int = 4
    """Model steps each case is predicted ahead (each `action_block` env steps)."""
    door_clearance: float = 0.15
    """m: a wall case starts at least this far from the door's edges, along the wall."""
    open_clearance: float = 0.1
    """m: an open case's real path keeps the agent's edge this far from every wall and the arena's edge."""
    seed: int = 0


def validate_wall_config(cfg: WallProbeConfig, where: str = "--walls") -> None:
    if cfg.cases < 1:
        raise ConfigError(f"{where}: cases must be >= 1, got {cfg.cases}")
    if cfg.blocks < 1:
        raise ConfigError(f"{where}: blocks must be >= 1, got {cfg.blocks}")
    for name in ("door_clearance", "open_clearance"):
        v = getattr(cfg, name)
        if not np.isfinite(v) or v < 0:
            raise ConfigError(f"{where}: {name.replace('_', '-')} must be a finite number >= 0, got {v}")


# ------------------------------------------------------------------ geometry of one room


@dataclasses.dataclass(frozen=True)
class WallFrame:
    """One room's dividing wall in (across, along) coordinates: across = the axis the wall cuts."""

    across: int  # state index of the coordinate across the wall (0: x, a vertical wall)
    wall: float  # the wall's centre line, across
    half_thickness: float
    door_center: float  # along
    door_half: float
    arena_half: float

    @classmethod
    def of(cls, layout: Any) -> "WallFrame":
        return cls(0 if layout.wall_axis == "x" else 1, float(layout.wall_pos), layout.wall_thickness / 2,
                   float(layout.door_center), layout.door_width / 2, float(layout.arena_half))

    def side(self, xy: np.ndarray) -> np.ndarray:
        """(...,) +1 / -1: which side of the wall's centre line each position (..., 2) lies on."""
        return np.where(xy[..., self.across] >= self.wall, 1.0, -1.0)

    def to_xy(self, across: np.ndarray, along: np.ndarray) -> np.ndarray:
        xy = np.empty(np.shape(across) + (2,))
        xy[..., self.across], xy[..., 1 - self.across] = across, along
        return xy


def sample_wall_cases(frame: WallFrame, rng: np.random.Generator, n: int, door_clearance: float,
                      radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) resting starts near the wall's face, away from the door, and (n, 2) actions straight at it."""
    lim = frame.arena_half - radius - 0.02
    # the room a side leaves between the wall's face and the arena's edge (a wall near the edge: one side only)
    room = {s: lim - s * frame.wall - frame.half_thickness - radius for s in (-1.0, 1.0)}
    sides = [s for s, r in room.items() if r >= WALL_DISTANCE[0]]
    if not sides:
        raise ConfigError("wall diagnostic: neither side of the room's wall leaves room for a start")
    side = rng.choice(sides, n)
    top = np.minimum(WALL_DISTANCE[1], np.array([room[s] for s in side]))
    gap = rng.uniform(WALL_DISTANCE[0], top)
    across = frame.wall + side * (frame.half_thickness + radius + gap)
    # along: uniform over the wall's length outside the door (and its clearance)
    lo_door, hi_door = frame.door_center - frame.door_half - door_clearance, frame.door_center + frame.door_half + door_clearance
    below, above = max(lo_door - (-lim), 0.0), max(lim - hi_door, 0.0)
    if below + above <= 0:
        raise ConfigError(f"wall diagnostic: the room's wall has no stretch {door_clearance} m from its door "
                          f"(door centre {frame.door_center}, width {2 * frame.door_half})")
    u = rng.uniform(0, below + above, n)
    along = np.where(u < below, -lim + u, hi_door + (u - below))
    action = np.zeros((n, 2))
    action[:, frame.across] = -side
    return frame.to_xy(across, along), action


def _wall_clearance(layout: Any, xy: np.ndarray) -> np.ndarray:
    """(...,) distance from each position's agent edge to the nearest box of the dividing wall."""
    from jepa_mpc_envs.geometry import AGENT_RADIUS, wall_distance

    return wall_distance(layout, xy) - AGENT_RADIUS


def _edge_clearance(layout: Any, xy: np.ndarray) -> np.ndarray:
    """(...,) distance from each position's agent edge to the arena's edge."""
    from jepa_mpc_envs.geometry import AGENT_RADIUS

    return layout.arena_half - np.abs(np.asarray(xy, np.float64)).max(axis=-1) - AGENT_RADIUS


def _clearance(layout: Any, xy: np.ndarray) -> np.ndarray:
    """(...,) distance from each position's agent edge to the nearest wall box or the arena's edge."""
    return np.minimum(_wall_clearance(layout, xy), _edge_clearance(layout, xy))


def sample_open_starts(layout: Any, rng: np.random.Generator, n: int, clearance: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) free resting starts `clearance` clear of walls and (n, 2) constant actions (random direction,
    thrust 0.5-1); the caller keeps the cases whose real paths stay clear."""
    from jepa_mpc_envs.geometry import sample_free_positions

    starts = np.empty((0, 2))
    while len(starts) < n:
        p = sample_free_positions(layout, rng, 4 * n)
        starts = np.concatenate([starts, p[_clearance(layout, p) >= clearance]])[:n]
    angle = rng.uniform(0, 2 * np.pi, n)
    action = rng.uniform(0.5, 1.0, n)[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return starts, action


# ------------------------------------------------------------------ simulation and prediction


def simulate_blocks(env: Any, starts: np.ndarray, actions: np.ndarray, blocks: int, block: int) -> np.ndarray:
    """(N, blocks, 2) the simulator's positions at each block end, every case from its own full start state
    (N, state_dim) under its constant action (N, 2)."""
    from jepa_mpc_envs.suites import Task

    out = np.empty((len(starts), blocks, 2))
    for i, (s, a) in enumerate(zip(starts, actions)):
        s = tuple(float(v) for v in s)
        env.reset(options={"task": Task(name="wall-probe", start=s, goal=s, tolerance=0.0, max_steps=10 ** 6)})
        for b in range(blocks):
            for _ in range(block):
                _, _, _, _, info = env.step(np.asarray(a, np.float32))
            out[i, b] = np.asarray(info["state"])[:2]
    return out


def predict_positions(model: Any, probe: Any, obs: np.ndarray, actions: np.ndarray, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Probe read-outs of the start latents (N, 2) and of the predicted block ends (N, blocks, 2) under the
    constant actions (N, 2), each repeated over the model's action block."""
    from jepa_mpc.probe import predicted_readouts

    k = int(model.action_block)
    seq = np.tile(np.asarray(actions, np.float32), (1, k))[:, None, :].repeat(blocks, axis=1)
    r0, r = predicted_readouts(model, probe.arrays(), np.asarray(obs), seq)
    return np.asarray(r0)[..., :2], np.asarray(r)[..., :2]


# ------------------------------------------------------------------ the diagnostic


def suite_rooms(family: Any, suite: Any) -> list[tuple[np.ndarray, Any]]:
    """[(template start state, room layout)] for each distinct room of a suite; ConfigError for a family
    without a dividing wall."""
    rooms: dict = {}
    for task in suite.tasks:
        start = np.asarray(task.start, np.float64)
        params = family.room_of(start)
        key = None if params is None else tuple(np.round(np.asarray(params, np.float64), 6))
        if key not in rooms:
            layout = suite.layout if params is None else suite.layout.room(params)
            rooms[key] = (start, layout)
    for _, layout in rooms.values():
        if not all(hasattr(layout, f) for f in ("wall_axis", "wall_pos", "door_center", "door_width")):
            raise ConfigError(f"wall diagnostic: {suite.env_id} has no dividing wall (TwoRoom families only)")
    return list(rooms.values())


def _state_at(family: Any, template: np.ndarray, xy: np.ndarray) -> np.ndarray:
    s = np.repeat(template[None], len(xy), axis=0)
    s[:, family.position] = xy
    s[:, family.velocity] = 0.0
    return s


def wall_diagnostic(model: Any, probe: Any, family: Any, suite: Any, frame_skip: int,
                    cfg: WallProbeConfig = WallProbeConfig()) -> dict:
    """The wall-crossing rate of the model's predicted rollouts and its prediction error near walls and in
    open space, on the suite's rooms (see the module docstring). A JSON-ready dict."""
    from jepa_mpc.evaluate import wilson_interval
    from jepa_mpc_envs.geometry import AGENT_RADIUS

    validate_wall_config(cfg)
    rooms = suite_rooms(family, suite)
    rng = np.random.default_rng([cfg.seed, 0x3A11])
    per_room = -(-cfg.cases // len(rooms))
    env = family.make_env(layout=suite.layout, obs_type=model.obs_key, frame_skip=frame_skip)
    k = int(model.action_block)
    wall_starts, wall_actions, wall_frames, open_starts, open_actions, real_open = [], [], [], [], [], []
    try:
        for template, layout in rooms:
            frame = WallFrame.of(layout)
            xy, a = sample_wall_cases(frame, rng, per_room, cfg.door_clearance, AGENT_RADIUS)
            wall_starts.append(_state_at(family, template, xy))
            wall_actions.append(a)
            wall_frames += [frame] * per_room
            kept = 0
            for _ in range(20):  # open cases: keep those whose real path stays clear of every wall
                xy, a = sample_open_starts(layout, rng, 2 * per_room, cfg.open_clearance)
                starts = _state_at(family, template, xy)
                real = simulate_blocks(env, starts, a, cfg.blocks, k)
                clear = np.array([np.all(_clearance(layout, p) >= cfg.open_clearance) for p in real])
                take = np.flatnonzero(clear)[: per_room - kept]
                open_starts.append(starts[take])
                open_actions.append(a[take])
                real_open.append(real[take])
                kept += len(take)
                if kept == per_room:
                    break
        wall_starts, wall_actions = np.concatenate(wall_starts)[: cfg.cases], np.concatenate(wall_actions)[: cfg.cases]
        wall_frames = wall_frames[: cfg.cases]
        open_starts, open_actions = np.concatenate(open_starts)[: cfg.cases], np.concatenate(open_actions)[: cfg.cases]
        real_open = np.concatenate(real_open)[: cfg.cases]
        real_wall = simulate_blocks(env, wall_starts, wall_actions, cfg.blocks, k)
        obs = np.stack([env.observation_at(s) for s in np.concatenate([wall_starts, open_starts])])
    finally:
        env.close()
    r0, pred = predict_positions(model, probe, obs, np.concatenate([wall_actions, open_actions]), cfg.blocks)
    n = len(wall_starts)
    pred_wall, pred_open = pred[:n], pred[n:]

    start_side = np.array([f.side(s[family.position]) for f, s in zip(wall_frames, wall_starts)])
    real_side = np.stack([f.side(p) for f, p in zip(wall_frames, real_wall)])
    pred_side = np.stack([f.side(p) for f, p in zip(wall_frames, pred_wall)])
    stopped = np.all(real_side == start_side[:, None], axis=1)  # the simulator kept it on its side (all, by design)
    crossed = np.any(pred_side != start_side[:, None], axis=1) & stopped
    err_wall = np.linalg.norm(pred_wall - real_wall, axis=-1)[stopped]
    err_open = np.linalg.norm(pred_open - real_open, axis=-1)
    m = int(stopped.sum())
    lo, hi = wilson_interval(int(crossed.sum()), m)
    return {
        "rooms": len(rooms),
        "blocks": cfg.blocks,
        "action_block": k,
        "wall_cases": m,
        "wall_cases_crossed_by_simulator": int(n - m),
        "wall_crossings": int(crossed.sum()),
        "wall_crossing_rate": float(crossed.sum() / max(m, 1)),
        "wall_crossing_ci95": [lo, hi],
        "wall_error_m": [float(v) for v in err_wall.mean(axis=0)] if m else [],
        "open_cases": int(len(err_open)),
        "open_error_m": [float(v) for v in err_open.mean(axis=0)] if len(err_open) else [],
        "start_readout_error_m": float(np.linalg.norm(r0 - np.concatenate([wall_starts, open_starts])[:, family.position],
                                                      axis=-1).mean()),
        "suite": suite.path,
        "seed": cfg.seed,
    }


CONTACT_DISTANCE = 0.005  # m: a data step touches a wall when the agent's edge is this close to one


def data_wall_stats(family: Any, layout: Any, states: np.ndarray, lengths: np.ndarray) -> dict:
    """How much of the walls a dataset shows: steps whose agent edge is within CONTACT_DISTANCE of the
    dividing wall, and of the arena's edge, per 1,000 steps, and passages through the door (changes of side of the
    dividing wall) per episode. states (E, T + 1, state_dim), lengths (E,) steps per episode."""
    wall = edge = crossings = steps = 0
    for ep, n in zip(np.asarray(states), np.asarray(lengths)):
        ep = np.asarray(ep[: int(n) + 1], np.float64)
        params = family.room_of(ep[0])
        room = layout if params is None else layout.room(params)
        xy = ep[:, family.position]
        wall += int(np.sum(_wall_clearance(room, xy[1:]) < CONTACT_DISTANCE))
        edge += int(np.sum(_edge_clearance(room, xy[1:]) < CONTACT_DISTANCE))
        side = WallFrame.of(room).side(xy)
        crossings += int(np.sum(side[1:] != side[:-1]))
        steps += int(n)
    e = max(len(lengths), 1)
    return {"wall_contact_steps_per_1k": 1000.0 * wall / max(steps, 1), "edge_contact_steps_per_1k": 1000.0 * edge / max(steps, 1),
            "door_crossings_per_episode": crossings / e,
            "steps": steps, "episodes": int(len(lengths))}


def format_wall_report(d: dict) -> str:
    lo, hi = d["wall_crossing_ci95"]
    ahead = ", ".join(f"{v * 100:.1f}" for v in d["wall_error_m"])
    open_ = ", ".join(f"{v * 100:.1f}" for v in d["open_error_m"])
    data = d.get("data")
    lines = [] if data is None else [
        f"walls in the data ({data['episodes']} episodes, {data['steps']} steps): per 1,000 steps "
        f"{data['wall_contact_steps_per_1k']:.1f} at the dividing wall, {data['edge_contact_steps_per_1k']:.1f} at the "
        f"arena's edge; {data['door_crossings_per_episode']:.2f} door passages per episode"]
    return "\n".join(lines + [
        f"walls ({d['rooms']} rooms of {d['suite']}): predicted rollouts through a wall the simulator stops at: "
        f"{d['wall_crossings']} of {d['wall_cases']} ({100 * d['wall_crossing_rate']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]), "
        f"pushed at it for {d['blocks']} model steps of {d['action_block']} env steps",
        f"position error of the predicted block ends, 1..{d['blocks']} ahead (cm): at walls {ahead}; "
        f"in open space {open_} ({d['open_cases']} cases); start read-out {100 * d['start_readout_error_m']:.1f}",
    ])


__all__ = ["WallProbeConfig", "WallFrame", "validate_wall_config", "sample_wall_cases", "sample_open_starts",
           "simulate_blocks", "predict_positions", "suite_rooms", "wall_diagnostic", "data_wall_stats", "format_wall_report"]
