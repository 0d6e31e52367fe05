"""Goal graphs from reward-free exploration of the task's own room (`goal:graph --goal.source explore`).

The default goal graph (jepa_mpc.goal_graph) is built from the training data's episodes, so it
knows the training rooms' walls. In a room nobody trained in (envs/tworoom_layouts.py) those
transitions are wrong. Instead, before a task, the agent explores the room it is in, without
a goal or reward: `episodes` episodes of the data's own exploration policy (OU noise, one batched
simulator call). Where the episodes start (`EXPLORE_STARTS`):

* ``task-start`` (the default): every episode starts from the task's own start state and the agent
  moves only by actions, so it learns only the part of the room its policy reaches from there. One
  graph per task start (a suite of 200 tasks explores 200 times).
* ``reset``: every episode starts at a uniformly sampled free position of the true room, i.e. the
  agent is reset to anywhere in the room it has not seen (a resettable simulator of the test room,
  not exploration). One graph per room (a suite of 20 rooms x 10 tasks explores 20 times).

The observations are embedded with the world model's encoder (or, for the oracle, reduced to goal
features), and the graph is built from those episodes exactly as from a dataset. The exploration
steps are reported next to the results.

The world model still does the work that matters: embedding frames of an unseen room and
predicting which action sequences go through its door; the graph only turns "the data say these
two embeddings follow each other" into a cost-to-go, as it does with the training data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from jepa_mpc import goal_graph
from jepa_mpc.config import CollectConfig

MIN_POINTS_PER_NODE = 4
EXPLORE_STARTS = ("task-start", "reset")


def explore_config(meta: dict, episodes: int, seed: int) -> CollectConfig:
    """The dataset's own collection config (exploration policy, episode length, frame skip; from its
    meta.json), for `episodes` state-only episodes from `seed`."""
    known = {f.name for f in dataclasses.fields(CollectConfig)}
    saved = CollectConfig(**{k: v for k, v in (meta.get("config") or {}).items() if k in known})
    return dataclasses.replace(saved, num_episodes=episodes, seed=seed, pixels=False)


def explore_room(env: Any, layout: Any, room: Any, cfg: CollectConfig, start: Any = None) -> np.ndarray:
    """(num_episodes, T+1, state_dim) states of reward-free exploration in one room of `env` (a TaskFamily).

    `room` is the env's room key (`env.room_of(state)`), or None when the suite's layout is the room.
    `start` (state_dim,): every episode starts from this state (the task's own start) and moves only by
    the policy's actions; None: from uniformly sampled free starts of the room (a resettable simulator).
    """
    from jepa_mpc.data.collect import policy_actions

    room_seed = [] if room is None else np.round(np.abs(np.asarray(room, np.float64)) * 1e4).astype(np.int64).tolist()
    if start is not None:
        start = np.asarray(start, np.float64)
        if start.shape != (env.state_dim,):
            raise ValueError(f"explore_room: start has shape {start.shape}, expected ({env.state_dim},)")
        rng = np.random.default_rng([cfg.seed, *room_seed, *start.view(np.uint32).tolist()])
        starts = np.repeat(start[None], cfg.num_episodes, axis=0)
    else:
        rng = np.random.default_rng([cfg.seed, *room_seed])
        starts = (env.sample_start_states(layout, rng, cfg.num_episodes) if room is None
                  else env.sample_start_states(layout, rng, cfg.num_episodes, room=np.asarray(room)))
    actions = policy_actions(cfg, env, layout, rng, starts)
    with env.make_collector(env.build_model(layout), cfg.frame_skip) as collector:
        return collector.run(starts, actions)["state"]


class RoomGraphs:
    """`graph_for(task) -> LatentGraph` from exploring the task's room, built once per task start
    (`start="task-start"`) or per room (`start="reset"`) and cached; `explored_steps` counts the env
    steps spent.

    `embed(states (E, T+1, S)) -> (E, T+1, D)` maps exploration states into the goal graph's space
    (the encoder on rendered frames or on states for a learned model; goal features for the oracle).
    """

    def __init__(self, env: Any, layout: Any, embed: Callable[[np.ndarray], np.ndarray], explore: CollectConfig,
                 num_nodes: int, start: str = "task-start"):
        if start not in EXPLORE_STARTS:
            raise ValueError(f"RoomGraphs: start must be one of {EXPLORE_STARTS}, got {start!r}")
        self.env, self.layout, self.embed, self.explore, self.start = env, layout, embed, explore, start
        points = explore.num_episodes * (explore.episode_len + 1)
        self.graph_config = goal_graph.GraphConfig(num_nodes=max(2, min(num_nodes, points // MIN_POINTS_PER_NODE)),
                                                   seed=explore.seed)
        self._cache: dict[Any, goal_graph.LatentGraph] = {}
        self.explored_steps = 0

    def room_key(self, task: Any):
        room = self.env.room_of(np.asarray(task.start))
        return None if room is None else tuple(float(v) for v in room)

    def graph_for(self, task: Any) -> goal_graph.LatentGraph:
        room = self.room_key(task)
        start = tuple(float(v) for v in task.start) if self.start == "task-start" else None
        key = (room, start)
        if key not in self._cache:
            states = explore_room(self.env, self.layout, room, self.explore, start)
            self.explored_steps += states.shape[0] * (states.shape[1] - 1)
            self._cache[key] = goal_graph.build_graph(list(self.embed(states)), self.graph_config)
        return self._cache[key]


def pixel_embedder(env: Any, layout: Any, size: int, encode: Callable[[np.ndarray], np.ndarray],
                   batch: int = 2048) -> Callable[[np.ndarray], np.ndarray]:
    """embed(states) for a pixel model: render each state with the env's renderer, then encode."""
    renderer = env.pixel_renderer(env.build_model(layout), size)

    def embed(states: np.ndarray) -> np.ndarray:
        flat = states.reshape(-1, states.shape[-1])
        z = np.concatenate([np.asarray(encode(renderer.render_states(flat[i : i + batch])))
                            for i in range(0, len(flat), batch)])
        return z.reshape(states.shape[:2] + z.shape[1:])

    return embed


def state_embedder(encode: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def embed(states: np.ndarray) -> np.ndarray:
        z = np.asarray(encode(states.reshape(-1, states.shape[-1]).astype(np.float32)))
        return z.reshape(states.shape[:2] + z.shape[1:])

    return embed


__all__ = ["EXPLORE_STARTS", "explore_config", "RoomGraphs", "explore_room", "pixel_embedder", "state_embedder"]
