"""Run directory I/O: config JSON, normalisation stats JSON, Orbax checkpoints, `load_world_model`.

Run directory layout (written by `jepa_mpc.train`; read through `jepa_mpc.run.Run`):

    run/config.json        {"train": the exact TrainConfig, "data": dataset path, "dataset": {"path",
                           "digest" (content SHA-256), "env_id"}, "dataset_meta": its meta.json,
                           "trained_by": [{"git_commit", "git_dirty", "from_step"}] (the code that
                           trained it: a session whose git state differs from the last one's adds one)}
    run/norm_stats.json    dataset normalisation stats (state/action mean and std; always finite)
    run/checkpoints/<step>/  Orbax: items "params" (model Params) and "train" (opt state, EMA
                            target, step, PRNG key data)
    run/metrics.jsonl      one JSON object per log/eval line
    run/tb/                TensorBoard events
    run/probe.npz          latent read-outs (`jepa-mpc probe`, jepa_mpc/probe.py)

Checkpoints are verified before Orbax restores them (every array readable with the config's shape,
parameters finite): a damaged or incompatible one is one `CheckpointError` naming its folder.
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
from jepa_mpc.config import GCBCConfig, ModelConfig, RegularizerConfig, TrainConfig
from jepa_mpc.errors import CheckpointError, ConfigError
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
    gcbc = _build(GCBCConfig, d.pop("gcbc", {}), f"{where} [gcbc]")
    return dataclasses.replace(_build(TrainConfig, d, where), model=model, reg=reg, gcbc=gcbc)


def read_run_config(run_dir: str | Path) -> tuple[TrainConfig, dict]:
    """(TrainConfig, the whole JSON record) of a run; ConfigError if missing or unreadable."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: no run config (not a training run directory?)")
    try:
        record = json.loads(path.read_text())
        return train_config_from_dict(record["train"], str(path)), record
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # incl. JSON and UTF-8 errors
        raise ConfigError(f"{path}: unreadable run config ({_first_line(err)})") from None


def read_norm_stats(run_dir: str | Path) -> dict[str, np.ndarray]:
    """The run's normalisation stats; ConfigError if missing, unreadable or not finite."""
    path = Path(run_dir) / STATS_FILE
    try:
        stats = {k: np.asarray(v, np.float32) for k, v in json.loads(path.read_text()).items()}
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError, ValueError) as err:
        raise ConfigError(f"{path}: missing or unreadable normalisation stats ({type(err).__name__}: "
                          f"{' '.join(str(err).split())[:160]})") from None
    check_norm_stats(stats, str(path))
    return stats


def check_norm_stats(stats: dict[str, np.ndarray], where: str) -> None:
    """ConfigError naming the first statistic that holds NaN/inf (such stats make a NaN model)."""
    for name in sorted(stats):
        if not np.isfinite(np.asarray(stats[name], np.float64)).all():
            raise ConfigError(f"{where}: normalisation statistic '{name}' holds non-finite values (NaN/inf); "
                              "the dataset it came from is corrupt: start a new run on a clean dataset")


def checkpoint_manager(run_dir: str | Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(
        (Path(run_dir) / CKPT_DIR).absolute(), options=options, item_names=("params", "train")
    )


def abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _leaf_name(path: tuple) -> str:
    """Orbax's name of a pytree leaf: its keys joined by dots (e.g. `opt_state.1.0.mu.encoder.fc.value`)."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return ".".join(parts)


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())[:160]}"


def verify_checkpoint_item(item_dir: Path, target: Any, where: str, finite: bool = False) -> None:
    """Read every array of one Orbax item (`<step>/params`, `<step>/train`) synchronously with TensorStore
    and check it against `target`'s leaves (names and shapes; with `finite`, also no NaN/inf).

    Any problem is one CheckpointError naming `where`. Done before Orbax's own restore, whose parallel
    asynchronous reads leave tracebacks printed from background threads when a file is damaged.
    """
    import tensorstore as ts

    try:
        meta = json.loads((item_dir / "_METADATA").read_text())
        stored = {
            ".".join(str(k["key"]) for k in v["key_metadata"]): v["value_metadata"]
            for v in meta["tree_metadata"].values()
        }
    except Exception as err:  # noqa: BLE001  (missing, truncated or garbled metadata file)
        raise CheckpointError(f"{where}: corrupt or truncated checkpoint ({item_dir.name}/_METADATA: "
                              f"{_first_line(err)})") from None
    arrays = {n for n, v in stored.items()
              if not v.get("skip_deserialize") and v.get("value_type") in ("jax.Array", "np.ndarray")}
    wanted = {_leaf_name(path): tuple(x.shape) for path, x in jax.tree_util.tree_leaves_with_path(target)}
    for name in sorted(arrays ^ set(wanted)):
        side = "is missing from the checkpoint" if name in wanted else "is in the checkpoint, not in the model"
        raise CheckpointError(f"{where}: checkpoint does not match {CONFIG_FILE}: array {name} {side}")
    driver = "zarr3" if meta.get("use_zarr3") else "zarr"
    for name in sorted(wanted):
        if meta.get("use_ocdbt", True):
            kvstore = {"driver": "ocdbt", "base": item_dir.absolute().as_uri() + "/", "path": name}
        else:
            kvstore = {"driver": "file", "path": str((item_dir / name).absolute())}
        try:
            store = ts.open({"driver": driver, "kvstore": kvstore}, open=True).result()
            value = store.read().result()
        except Exception as err:  # noqa: BLE001  (TensorStore: truncated/garbled/missing chunk files)
            raise CheckpointError(f"{where}: corrupt or truncated checkpoint (array {name}: {_first_line(err)})") from None
        if tuple(store.shape) != wanted[name]:
            raise CheckpointError(f"{where}: checkpoint does not match {CONFIG_FILE}: {name} is stored with shape "
                                  f"{list(store.shape)}, the config makes {list(wanted[name])}")
        if finite and value.dtype.kind == "f" and not np.isfinite(value).all():
            raise CheckpointError(f"{where}: checkpoint holds non-finite (NaN/inf) parameters ({name})")


def restore_checkpoint(mngr: ocp.CheckpointManager, step: int, targets: dict[str, Any], where: str) -> dict:
    """Restore items {name: target pytree (arrays or abstract)} of checkpoint `step`. Every array is first
    verified (readable, the target's shape; "params" finite), so a damaged or incompatible checkpoint is
    one CheckpointError naming `where`."""
    step_dir = Path(mngr.directory) / str(step)
    for name, target in targets.items():
        verify_checkpoint_item(step_dir / name, target, where, finite=name == "params")
    try:
        return mngr.restore(
            step, args=ocp.args.Composite(**{k: ocp.args.StandardRestore(abstract(t)) for k, t in targets.items()})
        )
    except Exception as err:  # noqa: BLE001  (Orbax/TensorStore raise many types for a damaged file)
        raise CheckpointError(f"{where}: corrupt or truncated checkpoint ({_first_line(err)})") from None


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A trained world model, ready for the planner.

    encode(obs (..., *obs_shape)) -> (..., D); rollout(z0 (D,), actions (H, A)) -> (H, D), where one
    model step is `action_block` env steps and A = action_dim = action_block x env action dim; a model
    that sees `history` L > 1 latents also takes z0 (L, D) and the L - 1 action blocks between them
    (`rollout_p(state, z0, actions, past_actions)`; a single z0 is a history of one repeated latent);
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
    def history(self) -> int:
        """Latents the predictor sees (the current one last); > 1: the planner keeps each episode's past."""
        return self.config.model.history

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

    def rollout_p(self, state: nnx.State, z0: jax.Array, actions: jax.Array,
                  past_actions: jax.Array | None = None) -> jax.Array:
        return nnx.merge(self.graphdef, state).rollout(z0, actions, past_actions)

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
    graphdef, state, step = restore_params(run_dir, init_world_model(cfg.model, seed=0, stats=stats), step)
    return LoadedModel(cfg, graphdef, state, stats, step, str(run_dir))


def restore_params(run_dir: Path, module: nnx.Module, step: int | None = None) -> tuple[nnx.GraphDef, nnx.State, int]:
    """(graphdef, state, step): `module` (a world model or a GCBC policy, freshly initialised) with the
    parameters of run_dir's latest (or given) checkpoint, verified first (CheckpointError names it)."""
    graphdef, params, rest = split_model(module)
    mngr = checkpoint_manager(run_dir)
    try:
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise ConfigError(f"{run_dir / CKPT_DIR}: no checkpoint found")
        restored = restore_checkpoint(mngr, step, {"params": params}, str(run_dir / CKPT_DIR / str(step)))
    finally:
        mngr.close()
    graphdef, state = nnx.split(nnx.merge(graphdef, restored["params"], rest))
    return graphdef, state, int(step)


__all__ = [
    "LoadedModel",
    "restore_params",
    "check_norm_stats",
    "checkpoint_manager",
    "load_world_model",
    "read_norm_stats",
    "read_run_config",
    "restore_checkpoint",
    "train_config_from_dict",
    "write_json_atomic",
]
