"""Rollout videos: the executed path, the goal and the hazards, drawn over top-down renders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jepa_mpc.atomic import atomic_path
from jepa_mpc_envs.registry import get_family

GOAL_RGB = np.array([40, 200, 60], np.uint8)
TRAIL_RGB = np.array([30, 90, 255], np.uint8)
PLAN_RGB = np.array([255, 150, 0], np.uint8)
INFEASIBLE_RGB = np.array([230, 30, 30], np.uint8)
SUBGOAL_RGB = np.array([220, 40, 220], np.uint8)


def world_to_pixel(xy: np.ndarray, view_half: float, size: int) -> np.ndarray:
    """(..., 2) arena coordinates -> (..., 2) integer (row, col) in a top-down frame (up = +y)."""
    col = (np.asarray(xy)[..., 0] + view_half) / (2 * view_half) * size
    row = (view_half - np.asarray(xy)[..., 1]) / (2 * view_half) * size
    return np.stack([row, col], axis=-1).astype(int)


def _dot(frame: np.ndarray, rc: np.ndarray, radius: int, rgb: np.ndarray) -> None:
    r, c = rc
    h, w = frame.shape[:2]
    frame[max(r - radius, 0) : min(r + radius + 1, h), max(c - radius, 0) : min(c + radius + 1, w)] = rgb


def episode_frames(layout, task, path: np.ndarray, size: int = 256, plans: Sequence = (),
                   env_id: str = "jepa_mpc_envs/TwoRoom-v0", states: np.ndarray | None = None,
                   subgoals: Sequence = ()) -> np.ndarray:
    """(T, size, size, 3) uint8 frames: the agent along `path` (T, 2) of its declared positions, goal and trail marked.

    `states` (T, state_dim): the full physical states to render (EpisodeRecord.states; Push-T needs
    the block's angle and the pusher); without them the states are `path` with the rest zero.

    `plans`: (step, predicted block-end positions (H, 2)) per plan (EpisodeRecord.planned_paths); each
    frame shows the latest plan made at or before it (orange dots; red when it was infeasible).
    `subgoals`: (step, node, position or None) per change of subgoal (EpisodeRecord.subgoals, hierarchy=graph);
    each frame marks the current one (magenta square; none while the goal itself is planned to).
    Goal features are drawn where the env puts them in the camera plane (TwoRoom: the position;
    Reacher: the fingertip of that arm configuration).
    """
    env = get_family(env_id)
    renderer = env.pixel_renderer(env.build_model(layout, tuple(task.hazards)), size)
    if states is None or len(states) != len(path):
        states = np.zeros((len(path), env.state_dim), np.float32)
        states[:, env.position] = path
    frames = renderer.render_states(states).copy()
    renderer.close()
    view_half = env.view_half(layout)
    to_world = lambda f: env.feature_to_world(np.asarray(f, np.float32), layout)  # noqa: E731
    goal = world_to_pixel(to_world(env.goal_features(np.asarray(task.goal, np.float32))), view_half, size)
    trail = world_to_pixel(to_world(path), view_half, size)
    plan_steps = np.array([p[0] for p in plans], int)
    subgoal_steps = np.array([g[0] for g in subgoals], int)
    for t, frame in enumerate(frames):
        for rc in trail[: t + 1 : 2]:
            _dot(frame, rc, 0, TRAIL_RGB)
        k = int(np.searchsorted(plan_steps, t, side="right")) - 1 if len(plan_steps) else -1
        if k >= 0:
            rgb = INFEASIBLE_RGB if len(plans[k]) > 2 and plans[k][2] else PLAN_RGB
            for rc in world_to_pixel(to_world(plans[k][1]), view_half, size):
                _dot(frame, rc, 1, rgb)
        k = int(np.searchsorted(subgoal_steps, t, side="right")) - 1 if len(subgoal_steps) else -1
        if k >= 0 and subgoals[k][2] is not None:
            _dot(frame, world_to_pixel(to_world(np.asarray(subgoals[k][2], np.float32)[None]), view_half, size)[0],
                 max(size // 64, 2), SUBGOAL_RGB)
        _dot(frame, goal, max(size // 64, 2), GOAL_RGB)
    return frames


def write_episode_video(out: Path, suite, tasks: Sequence, records: Sequence, fps: int = 20, size: int = 256) -> Path:
    """One mp4 with the given episodes one after another (written atomically)."""
    import imageio_ffmpeg

    with atomic_path(out, keep_suffix=True) as tmp:  # clip.tmp.mp4: ffmpeg picks the format by the ending
        writer = imageio_ffmpeg.write_frames(str(tmp), (size, size), fps=fps, macro_block_size=1)
        writer.send(None)
        for task, rec in zip(tasks, records):
            plans = getattr(rec, "planned_paths", ())
            states = np.asarray(rec.states, np.float32) if getattr(rec, "states", None) else None
            for frame in episode_frames(suite.layout, task, np.asarray(rec.path, np.float32), size, plans,
                                        suite.env_id, states, getattr(rec, "subgoals", ())):
                writer.send(np.ascontiguousarray(frame))
        writer.close()
    return out
