"""Batched open-loop rollouts of a MuJoCo model: the collectors of reward-free data and of the oracle.

`StateCollector(model, frame_skip, env=family).run(init_states (N, S), actions (N, T, nu))` rolls all N
sequences out in one multithreaded `mujoco.rollout` call (a persistent thread pool) and keeps every
`frame_skip`-th physics state. A family whose state is not plain MuJoCo state (TwoRoomLayouts: the
room is part of it) or that `mujoco.rollout` cannot step (OGBench) provides its own collector with
the same `run` / `close` interface (`TaskFamily.make_collector`). `BatchCollector` is what the batched
collectors share (state conversion, the arrays `run` returns); `StateCollector` steps with `mujoco.rollout`,
envs/mjx_rollout.py `MJXCollector` with MJX (`make_collector(..., backend="mjx")`).
"""

from __future__ import annotations

import os

import numpy as np

from . import base
from .base import mujoco

from mujoco import rollout as _rollout  # noqa: E402  (after base: MUJOCO_GL is set first)


SIM_BACKENDS = ("mujoco", "mjx")
"""The simulators a collector runs on: "mujoco" (`StateCollector`, multithreaded `mujoco.rollout` on the CPU,
the default) and "mjx" (envs/mjx_rollout.py `MJXCollector`, jitted MJX on JAX's devices, also float64; the
optional extra `mjx`)."""
DEFAULT_SIM_BACKEND = SIM_BACKENDS[0]


class BatchCollector:
    """What the batched open-loop collectors share: the family's state conversion and the arrays `run`
    returns. A subclass steps the physics (`rollout_mjstates`) and releases what it holds (`close`)."""

    def __init__(self, model, frame_skip: int = 5, env=None):
        self.env = env
        self.model = model
        self.frame_skip = int(frame_skip)
        self._qpos_off = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_TIME)
        self._qvel_off = self._qpos_off + model.nq

    @property
    def _convert(self):
        return self.env if self.env is not None else base

    def initial_state(self, states: np.ndarray) -> np.ndarray:
        return self._convert.state_to_mjstate(self.model, states)

    def models(self, init_states: np.ndarray):
        """The model each row is rolled out with: `self.model` for all (a subclass may give one per row,
        all of the same state size)."""
        return self.model

    def physical_states(self, mjstates: np.ndarray, init_states: np.ndarray) -> np.ndarray:
        """(N, T+1, nstate) rolled-out MuJoCo states -> (N, T+1, S) physical states."""
        return self._convert.mjstate_to_state(self.model, mjstates)

    def rollout_mjstates(self, init_states: np.ndarray, init: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(N, T, nstate) float64 mjSTATE_FULLPHYSICS rows after each control step, from the (N, nstate)
        rows `init` (of `init_states`) with each of the (N, T, nu) actions held for `frame_skip` physics steps."""
        raise NotImplementedError

    def run(self, init_states: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        n, t, _ = actions.shape
        if n == 0 or t == 0:
            raise ValueError(f"{type(self).__name__}.run needs at least one episode and one step (got actions {actions.shape})")
        init_states = np.asarray(init_states, dtype=np.float64)
        init = self.initial_state(init_states)
        steps = self.rollout_mjstates(init_states, init, np.asarray(actions, dtype=np.float64))
        full = np.concatenate([init[:, None, :], steps], axis=1)
        nq, nv = self.model.nq, self.model.nv
        return {
            "state": self.physical_states(full, init_states),
            "qpos": full[..., self._qpos_off : self._qpos_off + nq].copy(),
            "qvel": full[..., self._qvel_off : self._qvel_off + nv].copy(),
        }

    def close(self) -> None:
        pass

    def __enter__(self) -> "BatchCollector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StateCollector(BatchCollector):
    """Batched open-loop rollouts of a MuJoCo model on a persistent `mujoco.rollout` thread pool.

    `run(init_states (N, S), actions (N, T, nu))` -> dict of state (N, T+1, S) float32 and
    qpos (N, T+1, nq), qvel (N, T+1, nv) float64; each action is held for `frame_skip` physics steps.
    States are converted with the family's `state_to_mjstate` / `mjstate_to_state` (`env`: a
    TaskFamily; None: the (qpos[0:2], qvel[0:2]) states of TwoRoom).
    """

    def __init__(self, model, frame_skip: int = 5, nthread: int | None = None, env=None):
        super().__init__(model, frame_skip, env)
        self.nthread = max(1, int(nthread or os.cpu_count() or 1))
        self._datas = [mujoco.MjData(model) for _ in range(self.nthread)]
        self._pool = _rollout.Rollout(nthread=self.nthread)

    def rollout_mjstates(self, init_states: np.ndarray, init: np.ndarray, actions: np.ndarray) -> np.ndarray:
        control = np.repeat(actions, self.frame_skip, axis=1)
        phys, _ = self._pool.rollout(self.models(init_states), self._datas, init, control)
        return phys[:, self.frame_skip - 1 :: self.frame_skip]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


__all__ = ["SIM_BACKENDS", "DEFAULT_SIM_BACKEND", "BatchCollector", "StateCollector"]
