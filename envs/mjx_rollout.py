"""Batched open-loop rollouts on MJX (MuJoCo in JAX): the "mjx" simulator backend of collection and the oracle.

`MJXCollector(model, frame_skip, env=family)` has `StateCollector`'s interface (`run(init_states (N, S),
actions (N, T, nu))` -> state/qpos/qvel arrays, `close`) and shares its state conversion and outputs
(`BatchCollector`): the start states become MuJoCo state rows with the family's `state_to_mjstate`, the
rolled-out rows become physical states with its `mjstate_to_state`. Only the stepping differs: the model
is put on JAX's device once (`mjx.put_model`) and one jitted function rolls all N episodes out, a vmap
over episodes of a `lax.scan` over control steps, each action held for `frame_skip` `mjx.step` calls.

MJX steps time, qpos, qvel and act (the start of an mjSTATE_FULLPHYSICS row); a model with more physics
state (history, plugin or plastic state) is refused. Two things make it agree with `mujoco.rollout` (to
~1e-10 over hundreds of steps with wall contacts, tests/test_mjx_rollout.py):
* float64, like MuJoCo (`jax.enable_x64` around the collector's own calls only; the rest of the process
  keeps JAX's float32). In float32 TwoRoom's near-rigid frictionless wall contacts (constraint stiffness
  ~1e11) give meaningless constraint forces: the agent leaves a wall at the wrong speed or blows up.
* MuJoCo's friction floor: MuJoCo raises a contact's sliding friction to `mjMINMU`, MJX does not (a
  frictionless pyramidal contact is then near-singular), so MJX gets a copy of the model with the floor
  applied (`mjx_model_source`).
Rows are padded to a power of two, so a varying batch (the oracle's live episodes) compiles a few shapes
only; with several local devices the episode axis is sharded over all of them.

MJX is the optional extra `mjx` (mujoco-mjx); without it `import_mjx` raises a one-line ConfigError.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io

import numpy as np

from .base import mujoco
from .errors import ConfigError
from .rollout import BatchCollector

INSTALL_HINT = "pip install -e '.[mjx]'"
_STEPPED = (mujoco.mjtState.mjSTATE_TIME | mujoco.mjtState.mjSTATE_QPOS | mujoco.mjtState.mjSTATE_QVEL
            | mujoco.mjtState.mjSTATE_ACT)
"""The state MJX steps: the first components of an mjSTATE_FULLPHYSICS row, in this order."""


def import_mjx():
    """The `mujoco.mjx` module; a one-line ConfigError naming the install command if it is missing."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Failed to import warp" without warp-lang
            from mujoco import mjx
    except ImportError as err:
        raise ConfigError(f"--sim-backend mjx: MJX is not installed ({err}); install it with {INSTALL_HINT}") from None
    return mjx


def mjx_model_source(model):
    """A copy of `model` as MJX should receive it: sliding friction at least `mujoco.mjMINMU`, the floor MuJoCo
    applies to every contact and MJX does not (a frictionless pyramidal contact, TwoRoom's walls, is then
    as soft in MJX as in MuJoCo instead of a near-singular constraint)."""
    model = copy.copy(model)
    for friction in (model.geom_friction, model.pair_friction):
        friction[:, 0] = np.maximum(friction[:, 0], mujoco.mjMINMU)
    return model


def padded_size(n: int, devices: int = 1) -> int:
    """The batch `n` rows are padded to: the next power of two, at least `devices`, a multiple of `devices`."""
    size = max(1 << max(n - 1, 0).bit_length(), devices)
    return -(-size // devices) * devices


def rollout_rows(mjx, mx, rows, actions, *, frame_skip: int):
    """(N, k) stepped-state rows (time, qpos, qvel, act) and (N, T, nu) actions -> (N, T, k) rows after each
    control step, each action held for `frame_skip` `mjx.step` calls (pure; jit it)."""
    import jax
    import jax.numpy as jnp

    d0 = mjx.make_data(mx)
    nq, nv = d0.qpos.shape[0], d0.qvel.shape[0]
    rows = rows.astype(d0.qpos.dtype)

    def episode(row, acts):
        d = d0.replace(time=row[0], qpos=row[1 : 1 + nq], qvel=row[1 + nq : 1 + nq + nv], act=row[1 + nq + nv :])

        def control_step(d, a):
            d = jax.lax.fori_loop(0, frame_skip, lambda _, d: mjx.step(mx, d), d.replace(ctrl=a.astype(d.ctrl.dtype)))
            return d, jnp.concatenate([d.time[None], d.qpos, d.qvel, d.act])

        return jax.lax.scan(control_step, d, acts)[1]

    return jax.vmap(episode)(rows, actions)


@functools.lru_cache(maxsize=None)
def jitted_rollout(frame_skip: int):
    """The jitted `rollout_rows` of a frame skip, shared by every collector (another collector of a model of
    the same structure reuses a batch shape's compilation)."""
    import jax

    return jax.jit(functools.partial(rollout_rows, import_mjx(), frame_skip=frame_skip))


class MJXCollector(BatchCollector):
    """Batched open-loop rollouts with MJX on JAX's devices (see the module docstring); same `run` / `close`
    as `StateCollector`. The first `run` of each padded shape compiles (seconds to a minute on a CPU)."""

    def __init__(self, model, frame_skip: int = 5, env=None):
        super().__init__(model, frame_skip, env)
        mjx = import_mjx()
        import jax
        from jax.sharding import NamedSharding, PartitionSpec

        self.stepped = mujoco.mj_stateSize(model, _STEPPED)
        extra = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS) - self.stepped
        if extra:
            raise ConfigError(f"--sim-backend mjx: the model has {extra} physics state value(s) beyond time, qpos, "
                              "qvel and act (history, plugin or plastic state) that MJX does not step; use --sim-backend mujoco")
        self.devices = jax.local_device_count()
        mesh = jax.make_mesh((self.devices,), ("episodes",), axis_types=(jax.sharding.AxisType.Auto,))
        self._rows_sharding = NamedSharding(mesh, PartitionSpec("episodes"))
        with jax.enable_x64(True):  # float64 like mujoco.rollout (see the module docstring)
            mx = mjx.put_model(mjx_model_source(model), impl="jax")
            self._mx = jax.device_put(mx, NamedSharding(mesh, PartitionSpec()))
        self._rollout = jitted_rollout(self.frame_skip)

    def rollout_mjstates(self, init_states: np.ndarray, init: np.ndarray, actions: np.ndarray) -> np.ndarray:
        import jax

        n, t = actions.shape[:2]
        pad = padded_size(n, self.devices) - n
        rows = np.concatenate([init[:, : self.stepped], np.repeat(init[:1, : self.stepped], pad, axis=0)])
        acts = np.concatenate([actions, np.repeat(actions[:1], pad, axis=0)])
        with jax.enable_x64(True):
            rows, acts = (jax.device_put(x, self._rows_sharding) for x in (rows, acts))
            stepped = np.asarray(self._rollout(self._mx, rows, acts), dtype=np.float64)[:n]
        out = np.repeat(init[:, None, :], t, axis=1)  # the rest of each row (none for MJX-steppable models)
        out[..., : self.stepped] = stepped
        return out

    def close(self) -> None:
        self._mx = self._rollout = None


__all__ = ["INSTALL_HINT", "MJXCollector", "import_mjx", "jitted_rollout", "mjx_model_source", "padded_size", "rollout_rows"]
