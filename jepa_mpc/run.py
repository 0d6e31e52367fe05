"""One training run as an object: what made it, and everything read back from it.

A run directory (written by `jepa-mpc train`, layout in `jepa_mpc.model.checkpoint`) holds the
TrainConfig, the normalisation stats, Orbax checkpoints, a record of the dataset it was trained on
(path, content digest, env id and the dataset's meta.json), of the code that trained it (git commit
and dirty flag) and, after `jepa-mpc probe`, its probe.
`Run` is the one way every verb reads a run, so a resumed, inspected, probed or evaluated run is
always checked against what made it:

    run = Run.open("runs/tworoom-state")       # ConfigError if it is not a run directory
    run.config, run.action_block, run.frame_skip, run.dataset_meta, run.env_id, run.trained_by
    model = run.load_world_model()              # latest checkpoint, verified (CheckpointError)
    ds = run.dataset()                          # its dataset, refused if its content changed
    ds = run.training_view(ds)                  # action blocks of the run, checked against the model
    run.probe_path                              # <run>/probe.npz (read by jepa_mpc.probe.load_run_probe)

The data layer of a run (open a dataset for a config, check it fits, split its episodes) lives here
too, so train.py and diagnostics.py share it without importing each other.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from jepa_mpc.config import TrainConfig
from jepa_mpc.errors import ConfigError
from jepa_mpc.model.checkpoint import (
    CONFIG_FILE,
    STATS_FILE,
    load_world_model,
    read_norm_stats,
    read_run_config,
)
from jepa_mpc.model.world_model import obs_shape

PROBE_FILE = "probe.npz"

# ---------------------------------------------------------------- the data layer of a run


def dataset_identity(ds: Any, path: str | Path | None = None) -> dict:
    """{"path", "digest", "env_id"} of a dataset: what a run records and is checked against."""
    where = path if path is not None else getattr(ds, "path", None)
    return {"path": None if where is None else str(where), "digest": ds.digest, "env_id": ds.meta.get("env_id")}


def open_dataset(path: str | Path, cfg: TrainConfig):
    """The dataset at `path` as `cfg` trains on it (action blocks), checked to fit the model (ConfigError)."""
    from jepa_mpc.data.store import Dataset

    if not path:
        raise ConfigError("no dataset given (--data DIR)")
    ds = Dataset.open(path).action_blocks(cfg.action_block)
    check_dataset(ds, cfg, where=str(path))
    return ds


def check_dataset(ds: Any, cfg: TrainConfig, where: str = "dataset") -> None:
    """ConfigError if the (blocked) dataset lacks the model's observations or has other shapes."""
    key = cfg.model.obs_key
    if key not in ds.arrays:
        raise ConfigError(
            f"{where}: has no '{key}' observations, which model.obs_key={key!r} needs "
            f"(dataset keys: {', '.join(ds.keys)})"
        )
    got = tuple(ds.arrays[key].shape[2:])
    if got != obs_shape(cfg.model):
        raise ConfigError(
            f"{where}: '{key}' observations have shape {got}, the model expects {obs_shape(cfg.model)}"
        )
    a_dim = ds.arrays["action"].shape[-1]
    if a_dim != cfg.model.action_dim:
        raise ConfigError(
            f"{where}: blocks of {cfg.action_block} actions have dim {a_dim}, model.action_dim={cfg.model.action_dim} "
            "(set --model.action-dim to action_block x the env's action dim)"
        )


def split_episodes(ds: Any, held_out_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) episode indices: the one split train, inspect and the probe share."""
    return ds.split(held_out_fraction, seed=0)


# ---------------------------------------------------------------- the run


def _short(digest: str | None) -> str:
    return (digest or "unknown")[:12]


@dataclasses.dataclass(frozen=True)
class Run:
    """A training run directory: its config and the record of what made it (see module doc)."""

    path: Path
    config: TrainConfig
    record: dict  # the whole config.json: {"train", "data", "dataset", "dataset_meta"}

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        """The run at `path`; ConfigError (one line) if it is missing or its config.json is unreadable."""
        path = Path(path)
        if not path.is_dir():
            raise ConfigError(f"{path}: no such run directory (train one with `jepa-mpc train`)")
        config, record = read_run_config(path)
        if not isinstance(record.get("dataset_meta", {}), dict) or not isinstance(record.get("dataset", {}), dict):
            raise ConfigError(f"{path / CONFIG_FILE}: unreadable run config (dataset record is not an object)")
        return cls(path, config, record)

    @classmethod
    def exists(cls, path: str | Path) -> bool:
        """Whether `path` holds a run (a config.json written by `jepa-mpc train`)."""
        return (Path(path) / CONFIG_FILE).is_file()

    # -- what made it
    @property
    def data_path(self) -> str:
        """The dataset directory the run was trained on ("" when it was trained on an in-memory dataset)."""
        return str(self.record.get("dataset", {}).get("path") or self.record.get("data") or "")

    @property
    def dataset_digest(self) -> str | None:
        """Content digest of the training dataset (None for runs written before it was recorded)."""
        return self.record.get("dataset", {}).get("digest")

    @property
    def dataset_meta(self) -> dict:
        """The training dataset's meta.json as it was at training time (env_id, frame_skip, layout, ...)."""
        return dict(self.record.get("dataset_meta") or {})

    @property
    def trained_by(self) -> list[dict]:
        """The code that trained the run: [{"git_commit", "git_dirty", "from_step"}], one entry per training
        session whose git state differed from the one before ([] for runs written before it was recorded)."""
        sessions = self.record.get("trained_by")
        return [s for s in sessions if isinstance(s, dict)] if isinstance(sessions, list) else []

    @property
    def env_id(self) -> str | None:
        return self.record.get("dataset", {}).get("env_id") or self.dataset_meta.get("env_id")

    @property
    def action_block(self) -> int:
        """Env steps per model step (a model action is this many env actions concatenated)."""
        return int(self.config.action_block)

    @property
    def frame_skip(self) -> int | None:
        """Physics steps per env step of the training data (None if its meta.json did not say)."""
        fs = self.dataset_meta.get("frame_skip")
        return None if fs is None else int(fs)

    # -- its dataset
    def check_same_dataset(self, ds: Any, where: str) -> None:
        """ConfigError (one line, naming both) unless `ds` is the dataset this run was trained on: same
        content digest (runs that predate the digest: same env id)."""
        new = dataset_identity(ds, where)
        env_old, env_new = self.env_id, new["env_id"]
        digest_differs = self.dataset_digest is not None and self.dataset_digest != new["digest"]
        if digest_differs or (env_old and env_new and env_old != env_new):
            raise ConfigError(
                f"{self.path / CONFIG_FILE}: run was trained on dataset {self.data_path or '<memory>'} "
                f"(env {env_old}, digest {_short(self.dataset_digest)}), not {where} "
                f"(env {env_new}, digest {_short(new['digest'])}); use a new --run directory for another dataset"
            )

    def dataset(self, path: str | Path = ""):
        """The run's own dataset (checked: same content as at training time), or the dataset at `path`
        (checked: same env). The raw episodes, not blocked (see `training_view`)."""
        from jepa_mpc.data.store import Dataset

        path = str(path or self.data_path)
        if not path:
            raise ConfigError(f"{self.path / CONFIG_FILE}: run record names no dataset; pass --data DIR")
        ds = Dataset.open(path)
        if self.data_path and Path(path).resolve() == Path(self.data_path).resolve():
            self.check_same_dataset(ds, path)  # the recorded dataset must still hold the same episodes
        elif self.env_id and ds.meta.get("env_id") and ds.meta["env_id"] != self.env_id:
            raise ConfigError(f"{path}: dataset is for env {ds.meta['env_id']!r}, run {self.path} was trained "
                              f"on {self.env_id!r}")
        return ds

    def training_view(self, ds: Any, where: str = "dataset"):
        """`ds` in the run's action blocks, checked to fit its model (what train and inspect read)."""
        view = ds.action_blocks(self.config.action_block)
        check_dataset(view, self.config, where=where)
        return view

    # -- its artifacts
    def norm_stats(self) -> dict[str, np.ndarray]:
        """Normalisation stats (ConfigError if missing, unreadable or not finite)."""
        return read_norm_stats(self.path)

    @property
    def has_norm_stats(self) -> bool:
        return (self.path / STATS_FILE).is_file()

    def load_world_model(self, step: int | None = None):
        """The world model of the latest (or given) checkpoint, verified (CheckpointError names the file)."""
        if self.config.objective != "jepa":
            raise ConfigError(f"{self.path}: run was trained with --objective {self.config.objective}, it has no "
                              "world model (evaluate it with `jepa-mpc eval planner:gcbc`)")
        return load_world_model(self.path, step)

    @property
    def probe_path(self) -> Path:
        """Where the run's probe lives (`jepa-mpc probe` writes it; jepa_mpc.probe.load_run_probe reads it)."""
        return self.path / PROBE_FILE


__all__ = ["Run", "PROBE_FILE", "check_dataset", "dataset_identity", "open_dataset", "split_episodes"]
