"""TwoRoom geometry: the layout, hazard shapes and pure-numpy predicates.

Nothing here touches MuJoCo, so task generation and validation, planners' cost
terms and tests can use these predicates on plain arrays.

Coordinates are arena coordinates in metres: the arena is the square
``[-arena_half, arena_half]^2``. The dividing wall is the line ``x = wall_pos``
(``wall_axis="x"``, a vertical wall) or ``y = wall_pos`` (``wall_axis="y"``, a
horizontal wall), ``wall_thickness`` thick, with one door: the gap
``[door_center - door_width/2, door_center + door_width/2]`` along the wall.

Predicates accept one point ``(2,)`` or a batch ``(..., 2)`` and return a bool
(or a bool array of the batch shape).

Hazard predicate (used for violations): the agent *centre* is inside the closed
hazard region, i.e. ``||xy - center|| <= radius`` for a Circle and
``lo <= xy <= hi`` (both coordinates) for a Box.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

import numpy as np

AGENT_RADIUS = 0.05  # radius of the point-mass sphere (metres)
MAX_SPEED = 5.0  # bound of |vx|, |vy| in observation spaces and task files (actuated top speed is 0.8 m/s)
START_MARGIN = 0.02  # extra clearance (m) of a sampled start position from walls (collection, env resets)


def dataclass_from_dict(cls, d: dict):
    """``cls(**d)``; ValueError ``"<cls> field '<key>': unknown field"`` for a key that is not a field of
    ``cls`` (the layouts' ``from_dict``; a dataset's meta.json and suite files store them as dicts)."""
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__} field '{sorted(unknown)[0]}': unknown field")
    return cls(**d)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Geometry of a TwoRoom arena (see module docstring)."""

    arena_half: float = 1.0  # arena is [-arena_half, arena_half]^2
    wall_axis: str = "x"  # "x": wall is the line x = wall_pos; "y": the line y = wall_pos
    wall_pos: float = 0.0
    wall_thickness: float = 0.04
    door_center: float = 0.0  # door centre, measured along the wall
    door_width: float = 0.3

    def __post_init__(self):
        problems = self.problems()
        if problems:
            field, msg = problems[0]
            raise ValueError(f"Layout field '{field}': {msg}")

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every invalid field; empty when the layout is valid."""
        out = []
        vals = dataclasses.asdict(self)
        for k, v in vals.items():
            if k == "wall_axis":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                out.append((k, f"must be a finite number, got {v!r}"))
        if out:
            return out
        if self.wall_axis not in ("x", "y"):
            out.append(("wall_axis", f"must be 'x' or 'y', got {self.wall_axis!r}"))
        a = self.arena_half
        if a <= 4 * AGENT_RADIUS:
            out.append(("arena_half", f"must be > {4 * AGENT_RADIUS}, got {a}"))
        if self.wall_thickness <= 0:
            out.append(("wall_thickness", f"must be > 0, got {self.wall_thickness}"))
        if abs(self.wall_pos) + self.wall_thickness / 2 + 2 * AGENT_RADIUS >= a:
            out.append(("wall_pos", f"wall at {self.wall_pos} leaves no room on one side"))
        if self.door_width <= 2 * AGENT_RADIUS:
            out.append(("door_width", f"must be > agent diameter {2 * AGENT_RADIUS}, got {self.door_width}"))
        if abs(self.door_center) + self.door_width / 2 > a:
            out.append(("door_center", f"door [{self.door_center} +- {self.door_width / 2}] leaves the arena"))
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        return dataclass_from_dict(cls, d)

    # --- derived geometry
    def wall_boxes(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The dividing wall as axis-aligned boxes [(lo, hi), ...] in (x, y), door excluded."""
        a, t = self.arena_half, self.wall_thickness
        d_lo = self.door_center - self.door_width / 2
        d_hi = self.door_center + self.door_width / 2
        spans = [(s, e) for s, e in ((-a, d_lo), (d_hi, a)) if e - s > 1e-9]
        boxes = []
        for s, e in spans:
            lo = np.array([self.wall_pos - t / 2, s])
            hi = np.array([self.wall_pos + t / 2, e])
            if self.wall_axis == "y":
                lo, hi = lo[::-1].copy(), hi[::-1].copy()
            boxes.append((lo, hi))
        return boxes


@dataclasses.dataclass(frozen=True)
class Circle:
    """Circular hazard region (arena coordinates)."""

    center: tuple[float, float]
    radius: float

    def to_dict(self) -> dict:
        return {"type": "circle", "center": [float(c) for c in self.center], "radius": float(self.radius)}


@dataclasses.dataclass(frozen=True)
class Box:
    """Axis-aligned box hazard region, lo = (xmin, ymin), hi = (xmax, ymax)."""

    lo: tuple[float, float]
    hi: tuple[float, float]

    def to_dict(self) -> dict:
        return {"type": "box", "lo": [float(c) for c in self.lo], "hi": [float(c) for c in self.hi]}


Hazard = Union[Circle, Box]


def _xy(xy) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64)[..., :2]


def _along(layout: Layout, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coordinate across the wall, coordinate along the wall)."""
    if layout.wall_axis == "x":
        return xy[..., 0], xy[..., 1]
    return xy[..., 1], xy[..., 0]


def _dist_to_box(xy: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    d = np.maximum(np.maximum(lo - xy, xy - hi), 0.0)
    return np.sqrt((d**2).sum(-1))


def in_wall(layout: Layout, xy, radius: float = AGENT_RADIUS):
    """True where a disk of `radius` centred at xy overlaps the dividing wall (door excluded)."""
    p = _xy(xy)
    hit = np.zeros(p.shape[:-1], dtype=bool)
    for lo, hi in layout.wall_boxes():
        hit |= _dist_to_box(p, lo, hi) < radius if radius > 0 else np.all((p >= lo) & (p <= hi), -1)
    return hit if hit.ndim else bool(hit)


def wall_distance(layout: Layout, xy) -> np.ndarray:
    """(...,) distance from each point to the nearest box of the dividing wall (0 inside one)."""
    p = _xy(xy)
    return np.min([_dist_to_box(p, lo, hi) for lo, hi in layout.wall_boxes()], axis=0)


def outside_arena(layout: Layout, xy, radius: float = AGENT_RADIUS):
    """True where a disk of `radius` centred at xy is not fully inside the arena."""
    p = _xy(xy)
    out = np.any(np.abs(p) > layout.arena_half - radius, axis=-1)
    return out if out.ndim else bool(out)


def is_free(layout: Layout, xy, radius: float = AGENT_RADIUS):
    """A position the agent can occupy: inside the arena and not in the wall."""
    free = ~np.asarray(in_wall(layout, xy, radius)) & ~np.asarray(outside_arena(layout, xy, radius))
    return free if free.ndim else bool(free)


def room_of(layout: Layout, xy):
    """Side of the dividing wall: -1 (coordinate < wall_pos) or +1 (>= wall_pos)."""
    across, _ = _along(layout, _xy(xy))
    side = np.where(across < layout.wall_pos, -1, 1)
    return side if side.ndim else int(side)


def needs_door_crossing(layout: Layout, start, goal):
    """True where start and goal lie in different rooms (a path must pass the door)."""
    res = np.asarray(room_of(layout, start)) != np.asarray(room_of(layout, goal))
    return res if res.ndim else bool(res)


def sample_free_position(layout: Layout, rng: np.random.Generator, margin: float = START_MARGIN,
                         room: int | None = None) -> np.ndarray:
    """(2,) a position uniform over the free space (``margin`` clear of the walls), in ``room`` (-1 / +1,
    `room_of`) when given: rejection sampling, one ``rng.uniform(-a, a, 2)`` draw per try."""
    a = layout.arena_half
    while True:
        p = rng.uniform(-a, a, size=2)
        if is_free(layout, p, AGENT_RADIUS + margin) and (room is None or room_of(layout, p) == room):
            return p


def sample_free_positions(layout: Layout, rng: np.random.Generator, n: int, margin: float = START_MARGIN) -> np.ndarray:
    """(n, 2) positions uniform over the free space, drawn in batches (the collectors' start positions)."""
    a = layout.arena_half
    out = np.empty((0, 2))
    while len(out) < n:
        p = rng.uniform(-a, a, size=(2 * (n - len(out)) + 8, 2))
        out = np.concatenate([out, p[np.asarray(is_free(layout, p, AGENT_RADIUS + margin))]])
    return out[:n]


def crossed_door(layout: Layout, states: np.ndarray) -> np.ndarray:
    """(E,) bool: the episode's room side (`room_of` of its states (E, T, >=2)) changes at some step."""
    side = np.asarray(room_of(layout, np.asarray(states)[..., :2]))
    return (side != side[:, :1]).any(axis=1)


def in_hazard(hazard: Hazard, xy):
    """True where the point xy (the agent centre) lies in the closed hazard region."""
    p = _xy(xy)
    if isinstance(hazard, Circle):
        c = np.asarray(hazard.center, dtype=np.float64)
        res = ((p - c) ** 2).sum(-1) <= float(hazard.radius) ** 2
    elif isinstance(hazard, Box):
        res = np.all((p >= np.asarray(hazard.lo)) & (p <= np.asarray(hazard.hi)), axis=-1)
    else:
        raise TypeError(f"not a hazard: {hazard!r}")
    return res if res.ndim else bool(res)


def in_any_hazard(hazards: Sequence[Hazard], xy):
    """True where xy lies in at least one of the hazards (False for no hazards)."""
    p = _xy(xy)
    res = np.zeros(p.shape[:-1], dtype=bool)
    for h in hazards:
        res |= np.asarray(in_hazard(h, p))
    return res if res.ndim else bool(res)


def distance_to_hazard(hazard: Hazard, xy):
    """Euclidean distance from xy to the hazard region (0 inside)."""
    p = _xy(xy)
    if isinstance(hazard, Circle):
        d = np.maximum(np.sqrt(((p - np.asarray(hazard.center)) ** 2).sum(-1)) - hazard.radius, 0.0)
    else:
        d = _dist_to_box(p, np.asarray(hazard.lo), np.asarray(hazard.hi))
    return d if np.ndim(d) else float(d)


def door_points(layout: Layout, n: int = 41, offsets: Sequence[float] | None = None) -> np.ndarray:
    """Sample points of the passable door opening, (len(offsets), n, 2).

    The agent centre must pass the door between door_center +- (door_width/2 - radius);
    cross-sections are taken at the wall's two faces and its centre line by default.
    """
    half = layout.door_width / 2 - AGENT_RADIUS
    along = np.linspace(layout.door_center - half, layout.door_center + half, n)
    if offsets is None:
        offsets = (-layout.wall_thickness / 2, 0.0, layout.wall_thickness / 2)
    rows = []
    for off in offsets:
        across = np.full_like(along, layout.wall_pos + off)
        pts = np.stack([across, along], -1) if layout.wall_axis == "x" else np.stack([along, across], -1)
        rows.append(pts)
    return np.stack(rows)


def door_blocked_by(hazards: Sequence[Hazard], layout: Layout, n: int = 41) -> bool:
    """Approximately: does the union of hazards close the door?

    True when, at some cross-section of the doorway (sampled with `n` points), every
    position the agent centre could pass through lies in a hazard.
    """
    if not hazards:
        return False
    covered = in_any_hazard(hazards, door_points(layout, n))  # (sections, n)
    return bool(np.any(np.all(covered, axis=-1)))


def free_grid(layout: Layout, hazards: Sequence[Hazard] = (), resolution: float = 0.02, keep_in: Box | None = None):
    """Occupancy grid of safe agent-centre positions: (xs, ys, free[ny, nx])."""
    a = layout.arena_half
    xs = np.arange(-a + resolution / 2, a, resolution)
    ys = xs.copy()
    pts = np.stack(np.meshgrid(xs, ys, indexing="xy"), -1)  # (ny, nx, 2)
    free = np.asarray(is_free(layout, pts)) & ~np.asarray(in_any_hazard(hazards, pts))
    if keep_in is not None:
        free &= np.asarray(in_hazard(keep_in, pts))
    return xs, ys, free


def violates(hazards: Sequence[Hazard], state, speed_limit: float | None = None, keep_in: Box | None = None) -> bool:
    """One step's violation: centre inside a hazard, outside the keep-in box, or speed above the limit."""
    s = np.asarray(state, dtype=np.float64).reshape(-1)
    if in_any_hazard(hazards, s[:2]):
        return True
    if keep_in is not None and not in_hazard(keep_in, s[:2]):
        return True
    return bool(speed_limit is not None and s.size >= 4 and np.hypot(s[2], s[3]) > speed_limit)


def path_exists(layout: Layout, hazards: Sequence[Hazard], start, goal, resolution: float = 0.02,
                keep_in: Box | None = None) -> bool:
    """Approximately: is there a hazard-free, wall-free path from start to goal (inside keep_in)? (grid connectivity)"""
    from scipy import ndimage

    xs, ys, free = free_grid(layout, hazards, resolution, keep_in)
    labels, _ = ndimage.label(free)  # 4-connectivity

    def cell(p):
        p = _xy(p)
        return int(np.argmin(np.abs(ys - p[1]))), int(np.argmin(np.abs(xs - p[0])))

    ls, lg = labels[cell(start)], labels[cell(goal)]
    return bool(ls != 0 and ls == lg)
