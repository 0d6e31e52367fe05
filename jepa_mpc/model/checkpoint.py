"""Run directory I/O: config JSON, normalisation stats JSON, Orbax checkpoints, `load_world_model`.

Run directory layout (written by `jepa_mpc.train`):

    run/config.json        the exact TrainConfig (+ dataset path and meta) as JSON
    run/norm_stats.json    dataset normalisation stats (state/action mean and std)
    run/checkpoints/<step>/  Orbax: items "params" (model Params) and "train" (opt state, EMA
                            target, step, PRNG key data)
    run/metrics.jsonl      one JSON object per log/eval line
    run/tb/                TensorBoard events
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from jepa_mpc.atomic import write_json_atomic
from jepa_mpc.config import ModelConfig, RegularizerConfig, TrainConfig
from jepa_mpc.errors import ConfigError
from jepa_mpc.model.world_model import WorldModel, init_world_model, obs_shape, split_model

CONFIG_FILE = "config.json"
STATS_FILE = "norm_stats.json"
CKPT_DIR = "checkpoints"


def _build(cls, d: dict, where: str):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)} for {cls.__name__}")
    kwargs = {}
    for k, v in d.items():
        if isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)


def train_config_from_dict(d: dict, where: str = CONFIG_FILE) -> TrainConfig:
    d = dict(d)
    model = _build(ModelConfig, d.pop("model", {}), f"{where} [model]")
    reg = _build(RegularizerConfig, d.pop("reg", {}), f"{where} [reg]")
    return dataclasses.replace(_build(TrainConfig, d, where), model=model, reg=reg)


def read_run_config(run_dir: str | Path) -> tuple[TrainConfig, dict]:
    """(TrainConfig, the whole JSON record) of a run; ConfigError if missing or unreadable."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: no run config (not a training run directory?)")
    try:
        record = json.loads(path.read_text())
        return train_config_from_dict(record["train"], str(path)), record
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: unreadable run config ({type(err).__name__}: {err})") from None


def read_norm_stats(run_dir: str | Path) -> dict[str, np.ndarray]:
    path = Path(run_dir) / STATS_FILE
    try:
        return {k: np.asarray(v, np.float32) for k, v in json.loads(path.read_text()).items()}
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: missing or unreadable normalisation stats ({err})") from None


def checkpoint_manager(run_dir: str | Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(
        (Path(run_dir) / CKPT_DIR).absolute(), options=options, item_names=("params", "train")
    )


def abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A trained world model, ready for the planner.

    encode(obs (..., *obs_shape)) -> (..., D); rollout(z0 (D,), actions (H, A)) -> (H, D), where one
    model step is `action_block` env steps and A = action_dim = action_block x env action dim;
    predict(z (..., D), a (..., A)) -> (..., D). All pure (params closed over), jit/vmap-able.
    For large models prefer the explicit-params forms: encode_p(state, obs), rollout_p(state, z0, a)
    with `state` passed as a jit argument (then the params are not baked in as constants).
    """

    config: TrainConfig
    graphdef: nnx.GraphDef
    state: nnx.State
    norm_stats: dict[str, np.ndarray]
    step: int
    run_dir: str

    @property
    def model_config(self) -> ModelConfig:
        return self.config.model

    @property
    def latent_dim(self) -> int:
        return self.config.model.latent_dim

    @property
    def action_dim(self) -> int:
        return self.config.model.action_dim

    @property
    def action_block(self) -> int:
        """Env steps per model step: a model action is `action_block` env actions concatenated."""
        return self.config.action_block

    @property
    def obs_key(self) -> str:
        return self.config.model.obs_key

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return obs_shape(self.config.model)

    def model(self) -> WorldModel:
        return nnx.merge(self.graphdef, self.state)

    # explicit-params pure functions
    def encode_p(self, state: nnx.State, obs: jax.Array) -> jax.Array:
        return nnx.merge(self.graphdef, state).encode(obs)

    def predict_p(self, state: nnx.State, z: jax.Array, a: jax.Array) -> jax.Array:
        return nnx.merge(self.graphdef, state).predict(z, a)

    def rollout_p(self, state: nnx.State, z0: jax.Array, actions: jax.Array) -> jax.Array:
        return nnx.merge(self.graphdef, state).rollout(z0, actions)

    # closures over the loaded params
    @property
    def encode(self) -> Callable[[jax.Array], jax.Array]:
        return lambda obs: self.encode_p(self.state, obs)

    @property
    def predict(self) -> Callable[[jax.Array, jax.Array], jax.Array]:
        return lambda z, a: self.predict_p(self.state, z, a)

    @property
    def rollout(self) -> Callable[[jax.Array, jax.Array], jax.Array]:
        return lambda z0, actions: self.rollout_p(self.state, z0, actions)


def load_world_model(run_dir: str | Path, step: int | None = None) -> LoadedModel:
    """Load the latest (or given) checkpoint of a training run; ConfigError names what is wrong."""
    run_dir = Path(run_dir)
    cfg, _ = read_run_config(run_dir)
    stats = read_norm_stats(run_dir)
    model = init_world_model(cfg.model, seed=0, stats=stats)
    graphdef, params, rest = split_model(model)
    mngr = checkpoint_manager(run_dir)
    step = mngr.latest_step() if step is None else step
    if step is None:
        raise ConfigError(f"{run_dir / CKPT_DIR}: no checkpoint found")
    try:
        restored = mngr.restore(
            step, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract(params)))
        )
    except (ValueError, KeyError, FileNotFoundError) as err:
        raise ConfigError(
            f"{run_dir / CKPT_DIR}/{step}: checkpoint does not match {CONFIG_FILE} ({str(err).splitlines()[0][:200]})"
        ) from None
    finally:
        mngr.close()
    graphdef, state = nnx.split(nnx.merge(graphdef, restored["params"], rest))
    return LoadedModel(cfg, graphdef, state, stats, int(step), str(run_dir))


__all__ = [
    "LoadedModel",
    "checkpoint_manager",
    "load_world_model",
    "read_norm_stats",
    "read_run_config",
    "train_config_from_dict",
    "write_json_atomic",
]
