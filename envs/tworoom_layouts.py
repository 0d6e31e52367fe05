"""TwoRoom with a different room every episode: the "unfamiliar room" test.

The physics, actuation and rendering are TwoRoom's (envs/tworoom.py). What changes per episode is
the room: the dividing wall's position and its door's centre and width. The room is part of the
physical state, so a state model sees it and a pixel model sees it in the frame:

    state = (x, y, vx, vy, wall_pos, door_center, door_width)   float32, 7 numbers

The last three are constant within an episode. A `LayoutFamily` says where rooms come from:
uniform ranges for the three numbers, plus `heldout` rooms drawn from their own seed. Collection
never draws a room within `min_gap` of a held-out room (distance in the unit cube of the three
normalised ranges), so the held-out rooms lie in regions of room space no training episode saw.

Shipped suites (200 tasks each, 20 rooms x 10 tasks, 60 % of them through the door):
``tworoom_layouts_val.json`` / ``tworoom_layouts_test.json`` on the family's held-out rooms
(split "heldout") and ``tworoom_layouts_indist_val.json`` / ``..._indist_test.json`` on rooms drawn
like the training data from the suite's own seed stream (split "train": in distribution, never a
collected room). The legacy ``tworoom_layouts_train.json`` / ``_heldout.json`` used the plain seed,
which is collection's stream: the "train" one holds the rooms of collect seed 0's first 20
episodes (envs/tasks/SCHEMA.md). A task's start and goal are full 7-number states; both carry the
same room.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import json
import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from . import tworoom
from .base import MujocoTaskEnv, cached_model, mujoco
from .errors import ConfigError
from .family import MujocoFamily
from .geometry import (AGENT_RADIUS, MAX_SPEED, START_MARGIN, Layout, dataclass_from_dict, is_free, room_of,
                       sample_free_position, violates)
from .rollout import StateCollector
from .suites import (DEFAULT_STREAM, Suite, Task, layout_parser, max_steps_field, parse_suite_document, round4,
                     seed_label, suite_rng, suite_to_dict, task_name, tolerance_field, vector)
from .tworoom_tasks import CROSSING_FRACTION, MIN_SEPARATION, POS_MARGIN

ENV_ID = "jepa_mpc_envs/TwoRoomLayouts-v0"
STATE_DIM = 7
STATE_FIELDS = ("x", "y", "vx", "vy", "wall_pos", "door_center", "door_width")
ROOM_FIELDS = STATE_FIELDS[4:]
DEFAULT_TOLERANCE = 0.1
DEFAULT_MAX_STEPS = 200
TASKS_PER_ROOM = 10


@dataclasses.dataclass(frozen=True)
class LayoutFamily:
    """Where the rooms come from (see the module docstring). Walls are vertical (x = wall_pos)."""

    arena_half: float = 1.0
    wall_pos_range: tuple[float, float] = (-0.35, 0.35)
    door_center_range: tuple[float, float] = (-0.55, 0.55)
    door_width_range: tuple[float, float] = (0.22, 0.45)
    heldout: int = 20
    """Rooms held out from collection (drawn from `heldout_seed`)."""
    heldout_seed: int = 1234
    min_gap: float = 0.15
    """No collected room lies within this normalised distance of a held-out room."""
    wall_thickness: float = 0.06
    """Thicker than TwoRoom's 0.04 m so the wall spans ~2 px at 64 x 64."""

    def __post_init__(self):
        for name in ("wall_pos_range", "door_center_range", "door_width_range"):
            lo, hi = getattr(self, name)
            object.__setattr__(self, name, (float(lo), float(hi)))
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"LayoutFamily field '{name}': expected [lo, hi] with lo < hi, got {[lo, hi]}")
        if self.heldout < 0 or self.min_gap < 0:
            raise ValueError("LayoutFamily field 'heldout'/'min_gap': must be >= 0")
        for corner in self._corners():  # every room of the range must be a valid TwoRoom layout
            self.room(corner)

    # --- rooms as (3,) parameter vectors
    @property
    def lows(self) -> np.ndarray:
        return np.array([self.wall_pos_range[0], self.door_center_range[0], self.door_width_range[0]])

    @property
    def spans(self) -> np.ndarray:
        return np.array([self.wall_pos_range[1], self.door_center_range[1], self.door_width_range[1]]) - self.lows

    def _corners(self) -> list[np.ndarray]:
        return [self.lows + self.spans * np.array(bits) for bits in np.ndindex(2, 2, 2)]

    def room(self, params) -> Layout:
        """The TwoRoom Layout of room parameters (wall_pos, door_center, door_width)."""
        w, c, d = (float(v) for v in np.asarray(params, np.float64)[:3])
        return Layout(arena_half=self.arena_half, wall_axis="x", wall_pos=w, door_center=c, door_width=d,
                      wall_thickness=self.wall_thickness)

    def heldout_rooms(self) -> np.ndarray:
        """(heldout, 3) room parameters of the held-out rooms (rounded to 4 decimals)."""
        rng = np.random.default_rng(self.heldout_seed)
        return np.round(self.lows + self.spans * rng.uniform(size=(self.heldout, 3)), 4)

    def gap_to_heldout(self, params) -> np.ndarray:
        """(...,) normalised distance of rooms (..., 3) to the nearest held-out room (inf without any)."""
        held = self.heldout_rooms()
        if len(held) == 0:
            return np.full(np.shape(params)[:-1], np.inf)
        u = (np.asarray(params)[..., None, :3] - held) / self.spans
        return np.linalg.norm(u, axis=-1).min(axis=-1)

    def sample_training_rooms(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, 3) rooms uniform over the ranges, none within `min_gap` of a held-out room."""
        out = np.empty((0, 3))
        while len(out) < n:
            p = self.lows + self.spans * rng.uniform(size=(2 * (n - len(out)) + 8, 3))
            out = np.concatenate([out, p[self.gap_to_heldout(p) >= self.min_gap]])
        return out[:n]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "LayoutFamily":
        return dataclass_from_dict(cls, d)  # __post_init__ turns the JSON lists of the ranges into tuples


def room_params(states) -> np.ndarray:
    """(..., 3) room parameters of (..., 7) states."""
    return np.asarray(states)[..., 4:7]


# ------------------------------------------------------------------ physics and rendering

_ROOM_MODELS: "collections.OrderedDict[tuple, mujoco.MjModel]" = collections.OrderedDict()


def _room_mjcf(key: tuple) -> str:
    a, t, w, c, d = key
    return tworoom.build_mjcf(Layout(arena_half=a, wall_axis="x", wall_pos=w, door_center=c, door_width=d,
                                     wall_thickness=t))


def room_model(arena_half: float, wall_thickness: float, params) -> mujoco.MjModel:
    """The compiled TwoRoom model of one room (LRU-cached, read-only)."""
    key = (float(arena_half), float(wall_thickness)) + tuple(round(float(v), 6) for v in np.asarray(params)[:3])
    return cached_model(_ROOM_MODELS, key, _room_mjcf, size=512)


def model_geometry(model: mujoco.MjModel) -> tuple[float, float]:
    """(arena half-width, dividing-wall thickness) of a TwoRoom model."""
    bound = model.geom("bound_xp")
    return float(bound.pos[0] - bound.size[0]), float(2 * model.geom("wall0").size[0])


def build_model(family: LayoutFamily | None = None, hazards: Sequence[Any] = ()) -> mujoco.MjModel:
    """The model of the family's middle room (every room has the same state size and renders alike)."""
    if hazards:
        raise ValueError("TwoRoomLayouts has no hazards")
    family = family or LayoutFamily()
    return room_model(family.arena_half, family.wall_thickness, family.lows + family.spans / 2)


def state_to_mjstate(model: mujoco.MjModel, states) -> np.ndarray:
    return tworoom.state_to_mjstate(model, np.asarray(states)[..., :4])


def mjstate_to_state(model: mujoco.MjModel, mjstates) -> np.ndarray:
    """(..., nstate) -> (..., 4): the agent part only (the room is not in MuJoCo's state; see RoomCollector)."""
    return tworoom.mjstate_to_state(model, mjstates)


class RoomCollector(StateCollector):
    """The batched `mujoco.rollout` collector with a room per row: each row is rolled out with its own
    room's model (rooms are the last three state fields) and the room is appended to its states."""

    def __init__(self, model: mujoco.MjModel, frame_skip: int = 5, nthread: int | None = None, env: Any = None):
        super().__init__(model, frame_skip, nthread, env)
        self.geometry = model_geometry(model)

    def models(self, init_states: np.ndarray) -> list[mujoco.MjModel]:
        return [room_model(*self.geometry, p) for p in room_params(init_states)]

    def physical_states(self, mjstates: np.ndarray, init_states: np.ndarray) -> np.ndarray:
        agent = mjstate_to_state(self.model, mjstates)
        rooms = np.broadcast_to(room_params(init_states)[:, None, :], agent.shape[:2] + (3,))
        return np.concatenate([agent, rooms.astype(np.float32)], axis=-1)


class RoomRenderer(tworoom.PixelRenderer):
    """TwoRoom's top-down renderer that draws each state's own room (its two wall boxes are moved
    and resized on a private copy of the model before each frame)."""

    def __init__(self, model: mujoco.MjModel, size: int = 64):
        super().__init__(copy.copy(model), size)
        self._walls = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"wall{i}") for i in range(2)]
        if min(self._walls) < 0:
            raise ValueError("RoomRenderer needs a model with two wall boxes (wall0, wall1)")
        self._arena_half, self._thickness = model_geometry(self.model)

    def _set_room(self, params) -> None:
        w, c, d = (float(v) for v in params)
        layout = Layout(arena_half=self._arena_half, wall_axis="x", wall_pos=w, door_center=c, door_width=d,
                        wall_thickness=self._thickness)
        for gid, (lo, hi) in zip(self._walls, layout.wall_boxes()):
            self.model.geom_pos[gid, :2] = (lo + hi) / 2
            self.model.geom_size[gid, :2] = (hi - lo) / 2

    def render_state(self, state) -> np.ndarray:
        self._set_room(room_params(np.asarray(state, np.float64)))
        return super().render_state(state)

    def render_states(self, states) -> np.ndarray:
        s = np.asarray(states, np.float64).reshape(-1, np.shape(states)[-1])
        out = np.empty((len(s), self.size, self.size, 3), np.uint8)
        rooms = room_params(s)
        change = np.flatnonzero(np.r_[True, np.any(rooms[1:] != rooms[:-1], axis=1)])
        bounds = np.r_[change, len(s)]
        for a, b in zip(bounds[:-1], bounds[1:]):  # consecutive frames of one episode share a room
            self._set_room(rooms[a])
            out[a:b] = super().render_states(s[a:b])
        return out


# ------------------------------------------------------------------ environment


class TwoRoomLayoutsEnv(MujocoTaskEnv):
    """TwoRoom whose room comes with each task (or is drawn from the family's training rooms).

    reset(options={"task": t}): start state, goal and room from the task (t.start[4:7]); info as
    TwoRoom's (success, violation, distance_to_goal, state, goal), with 7-number states.
    """

    def __init__(self, layout: LayoutFamily | dict = LayoutFamily(), obs_type: str = "state", frame_skip: int = 5,
                 max_steps: int = DEFAULT_MAX_STEPS, render_size: int = 64, render_mode: str | None = None,
                 tolerance: float = DEFAULT_TOLERANCE):
        if isinstance(layout, dict):
            layout = LayoutFamily.from_dict(layout)
        self._store_args(layout, obs_type, frame_skip, max_steps, render_size, render_mode, tolerance)
        a = layout.arena_half
        lo = np.r_[[-a, -a, -MAX_SPEED, -MAX_SPEED], layout.lows].astype(np.float32)
        hi = np.r_[[a, a, MAX_SPEED, MAX_SPEED], layout.lows + layout.spans].astype(np.float32)
        self._set_spaces(gym.spaces.Box(lo, hi, dtype=np.float32))
        self.hazards = ()
        self._room = layout.lows + layout.spans / 2
        self.model = build_model(layout)
        self.data = mujoco.MjData(self.model)
        self._clear_task(STATE_DIM)

    @property
    def renderer(self) -> RoomRenderer:
        if self._renderer is None:
            self._renderer = RoomRenderer(build_model(self.layout), self.render_size)
        return self._renderer

    @property
    def room(self) -> Layout:
        """The current episode's room."""
        return self.layout.room(self._room)

    @property
    def state(self) -> np.ndarray:
        return np.concatenate([tworoom.get_state(self.data), self._room]).astype(np.float32)

    def observation_at(self, state) -> Any:
        s = np.asarray(state, np.float32).reshape(-1)
        if s.size != STATE_DIM:
            raise ValueError(f"TwoRoomLayouts state must have {STATE_DIM} numbers {STATE_FIELDS}, got {s.size}")
        return self._pack(s)

    def _random_start_goal(self):
        room = self.layout.sample_training_rooms(self.np_random, 1)[0]
        start = np.r_[sample_free_position(self.layout.room(room), self.np_random, POS_MARGIN), 0.0, 0.0, room]
        return start, np.r_[sample_free_position(self.layout.room(room), self.np_random, POS_MARGIN), 0.0, 0.0, room]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        task, start, goal = self._begin_episode(seed, options)
        self._room = room_params(start).astype(np.float64)
        self.model = room_model(self.layout.arena_half, self.layout.wall_thickness, self._room)
        self.data = mujoco.MjData(self.model)
        tworoom.set_state(self.model, self.data, start[:4])
        self.goal = np.asarray(goal, np.float32)
        self.steps = 0
        return self.observation_at(self.state), self._info()

    def _info(self) -> dict:
        s = self.state
        task = self.task
        return self._distance_info(s, violates((), s, getattr(task, "speed_limit", None), getattr(task, "keep_in", None)))


def sample_start_states(layout: LayoutFamily | Layout, rng: np.random.Generator, n: int,
                        room: np.ndarray | None = None) -> np.ndarray:
    """(n, 7) resting starts, each in its own training room (or all in `room`, (3,) parameters)."""
    rooms = (layout.sample_training_rooms(rng, n) if room is None
             else np.repeat(np.asarray(room, np.float64)[None, :3], n, axis=0))
    pos = np.stack([sample_free_position(layout.room(r), rng, START_MARGIN) for r in rooms])
    return np.concatenate([pos, np.zeros((n, 2)), rooms], axis=1)


def episode_crossings(layout: LayoutFamily, states: np.ndarray) -> np.ndarray:
    """(E,) bool: the agent went through its room's door (the side of its wall changed)."""
    side = np.sign(states[..., 0] - states[..., 4])
    return (side != side[:, :1]).any(axis=1)


# ------------------------------------------------------------------ task suites


def _parse_task(ctx, d, family: LayoutFamily) -> Task:
    name = task_name(ctx, d, ("name", "start", "goal", "tolerance", "max_steps", "hazards"))
    start = vector(ctx, "start", d["start"], (STATE_DIM,))
    goal = vector(ctx, "goal", d["goal"], (STATE_DIM,))
    if d.get("hazards"):
        raise ctx.err("hazards", "TwoRoomLayouts tasks have no hazards")
    if any(abs(v) > MAX_SPEED for v in start[2:4] + goal[2:4]):
        raise ctx.err("start", f"velocity exceeds the speed bound {MAX_SPEED}")
    if goal[4:] != start[4:]:
        raise ctx.err("goal", f"room {list(goal[4:])} differs from the start's {list(start[4:])} (fields 4:7)")
    try:
        room = family.room(start[4:])
    except ValueError as e:
        raise ctx.err("start", f"room {list(start[4:])}: {e}") from None
    for field, s in (("start", start), ("goal", goal)):
        if not is_free(room, np.asarray(s[:2]), AGENT_RADIUS):
            raise ctx.err(field, f"position {list(s[:2])} is in the wall or outside the arena of its room")
    tolerance = tolerance_field(ctx, d, DEFAULT_TOLERANCE)
    max_steps = max_steps_field(ctx, d, DEFAULT_MAX_STEPS)
    return Task(name=name, start=start, goal=goal, tolerance=tolerance, max_steps=max_steps)


def suite_from_dict(d, path: str = "<dict>") -> Suite:
    return parse_suite_document(d, path, (ENV_ID,), layout_parser(LayoutFamily), _parse_task)


def generate_suite(seed: int, n: int, layout: LayoutFamily = LayoutFamily(), split: str = "heldout",
                   tolerance: float = DEFAULT_TOLERANCE, max_steps: int = DEFAULT_MAX_STEPS,
                   hazards: str = "none", stream: str = DEFAULT_STREAM) -> Suite:
    """`n` tasks, `TASKS_PER_ROOM` per room: rooms are the family's held-out ones (split="heldout",
    cycled) or fresh training-distribution rooms (split="train", drawn from the suite stream, so
    never a collected episode's room); 60 % of a room's tasks cross the door. RNG:
    `suite_rng(seed, stream)`."""
    if hazards != "none":
        raise ConfigError("TwoRoomLayouts suites have no hazards (--hazards none)")
    if split not in ("train", "heldout"):
        raise ConfigError(f"split must be 'train' or 'heldout', got {split!r}")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    rng = suite_rng(seed, stream)
    n_rooms = -(-n // TASKS_PER_ROOM)
    if split == "heldout":
        held = layout.heldout_rooms()
        if len(held) == 0:
            raise ConfigError("the layout family holds out no rooms (heldout = 0)")
        rooms = held[np.arange(n_rooms) % len(held)]
    else:
        rooms = np.round(layout.sample_training_rooms(rng, n_rooms), 4)
    out = []
    for i in range(n):
        params = rooms[i // TASKS_PER_ROOM]
        room = layout.room(params)
        cross = (i % TASKS_PER_ROOM) < round(CROSSING_FRACTION * TASKS_PER_ROOM)
        while True:
            s, g = sample_free_position(room, rng, POS_MARGIN), sample_free_position(room, rng, POS_MARGIN)
            if (room_of(room, s) != room_of(room, g)) == cross and np.linalg.norm(g - s) >= MIN_SEPARATION:
                break
        rnd = [round4(v) for v in (*s, 0.0, 0.0, *params)], [round4(v) for v in (*g, 0.0, 0.0, *params)]
        out.append(Task(name=f"rooms-{split}-{seed_label(seed, stream)}-{i:04d}", start=tuple(rnd[0]), goal=tuple(rnd[1]),
                                 tolerance=float(tolerance), max_steps=int(max_steps)))
    suite = Suite(env_id=ENV_ID, layout=layout, tasks=tuple(out))
    return dataclasses.replace(suite_from_dict(suite_to_dict(suite), "<generated>"), path=None)


# ------------------------------------------------------------------ family


class TwoRoomLayoutsFamily(MujocoFamily):
    """TwoRoomLayouts as a task family: TwoRoom's (x, y, vx, vy) plus the room (wall_pos, door_center,
    door_width); the room changes per task (`room_of`), so collection and the oracle roll each row out
    with its own room's model (`RoomCollector`)."""

    env_id = ENV_ID
    entry_point = "jepa_mpc_envs.tworoom_layouts:TwoRoomLayoutsEnv"
    state_fields = STATE_FIELDS
    position, velocity, goal = slice(0, 2), slice(2, 4), slice(0, 2)
    default_tolerance = DEFAULT_TOLERANCE
    default_max_steps = DEFAULT_MAX_STEPS
    splits = ("heldout", "train")

    env_class, layout_class, renderer_class = TwoRoomLayoutsEnv, LayoutFamily, RoomRenderer
    collector_class = RoomCollector
    sim_backends = ("mujoco",)  # a room (model) per row: no MJX collector
    model_builder = staticmethod(build_model)
    suite_parser = staticmethod(suite_from_dict)
    suite_generator = staticmethod(generate_suite)
    to_mjstate, from_mjstate = staticmethod(state_to_mjstate), staticmethod(mjstate_to_state)

    def sample_start_states(self, layout, rng, n, room=None):
        return sample_start_states(layout, rng, n, room=room)

    def view_half(self, layout):
        return tworoom.view_half(layout)

    def episode_crossings(self, layout, states):
        return episode_crossings(layout, states)

    def room_of(self, state):
        return room_params(state)


__all__ = ["ENV_ID", "LayoutFamily", "TwoRoomLayoutsEnv", "RoomCollector", "RoomRenderer", "generate_suite",
           "suite_from_dict", "sample_start_states", "room_model", "build_model", "TwoRoomLayoutsFamily"]
