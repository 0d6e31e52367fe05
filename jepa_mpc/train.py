"""Training of the JEPA world model: multi-step latent prediction + anti-collapse regulariser.

    loss = w_tf * mean ||P(z_{t-L+1..t}, a_{..t}) - sg?(z_{t+1})||^2          (teacher-forced, all t)
         + w_ro * mean ||rollout(z_{0..L-1}, a_{L-1..L+k-2}) - sg?(z_{L..L+k-1})||^2  (open loop, k steps)
         + lambda * R(z)                                                     (SIGReg | VICReg | 0)

Targets are the encoder's own embeddings of the real future observations (with gradient for
sigreg/vicreg/none, as in LeWorldModel; from a stop-gradient EMA copy of the encoder for `ema`).

Run directory: see `jepa_mpc.model.checkpoint`; read back through `jepa_mpc.run.Run`. `jepa-mpc train`
resumes from the latest checkpoint in the run directory, on the same dataset only (content digest and
env id are recorded in config.json and checked). Batches are a function of the step (WindowSampler) and
the step's PRNG key is fold_in(key(seed), step), so a resumed run ends exactly where an uninterrupted
one would. Only finite parameters are ever checkpointed: a step whose loss or updated parameters are
NaN/inf stops the run (TrainingDiverged) and keeps the last finite state.

The loop is shared by every training objective (`TrainConfig.objective`): an `Objective` supplies the
model, the loss, the batches and the held-out check; "jepa" is the world model above, "gcbc" the
goal-conditioned behaviour-cloning baseline (jepa_mpc/gcbc.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro
import orbax.checkpoint as ocp
from flax import nnx

from jepa_mpc import parallel, provenance
from jepa_mpc.atomic import write_bytes_atomic, write_json_atomic
from jepa_mpc.cli import parse
from jepa_mpc import gcbc
from jepa_mpc.config import OBJECTIVES, TRAIN_PRESETS, TrainConfig, check_finite, to_dict
from jepa_mpc.diagnostics import build_eval_data, evaluate
from jepa_mpc.errors import ConfigError, UserError
from jepa_mpc.model.checkpoint import CONFIG_FILE, STATS_FILE, check_norm_stats, checkpoint_manager, restore_checkpoint
from jepa_mpc.model.encoders import mean_frame
from jepa_mpc.model.world_model import (
    WorldModel,
    init_world_model,
    split_model,
    validate_model_config,
)
from jepa_mpc.paths import output_dir
from jepa_mpc.regularizers import check_regularizer, regularizer_loss
from jepa_mpc.run import Run, check_dataset, dataset_identity, open_dataset, split_episodes


class TrainingDiverged(UserError):
    """The loss or the updated parameters became NaN/inf; the last finite state is kept as a checkpoint."""


# ---------------------------------------------------------------- loss


def window_context(z: jax.Array, a: jax.Array, history: int) -> tuple[jax.Array, jax.Array]:
    """Teacher-forcing contexts for every transition of a window.

    z (B, W, D), a (B, W-1, A) -> z_ctx (B, W-1, L, D), a_ctx (B, W-1, L, A): the context for step t
    is z_{t-L+1..t}, a_{t-L+1..t}, padded at the window start by repeating z_0 and zero actions.
    """
    L = history
    B, W, _ = z.shape
    zpad = jnp.concatenate([jnp.repeat(z[:, :1], L - 1, axis=1), z], axis=1)
    apad = jnp.concatenate([jnp.zeros((B, L - 1, a.shape[-1]), a.dtype), a], axis=1)
    idx = jnp.arange(W - 1)[:, None] + jnp.arange(L)[None, :]
    return zpad[:, idx], apad[:, idx]


def compute_loss(
    model: WorldModel,
    target_model: WorldModel | None,
    batch: dict[str, jax.Array],
    key: jax.Array,
    cfg: TrainConfig,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    L, k = cfg.model.history, cfg.rollout_steps
    obs, a = batch[cfg.model.obs_key], batch["action"]
    z = model.encode(obs)  # (B, W, D)
    if target_model is None:
        tgt = z
    else:
        tgt = jax.lax.stop_gradient(target_model.encode(obs))

    z_ctx, a_ctx = window_context(z, a, L)
    pred_tf = model.predict_hist(z_ctx, a_ctx)  # (B, W-1, D)
    tf_loss = jnp.mean((pred_tf - tgt[:, 1:]) ** 2)

    roll = jax.vmap(model.rollout)(z[:, :L], a[:, L - 1 : L - 1 + k], a[:, : L - 1])  # (B, k, D)
    roll_loss = jnp.mean((roll - tgt[:, L : L + k]) ** 2)

    reg = regularizer_loss(cfg.reg, z, key)
    loss = cfg.teacher_forcing_weight * tf_loss + cfg.rollout_weight * roll_loss + cfg.reg.weight * reg
    extra = {}
    if cfg.inverse_weight > 0:  # the latent step must tell which action was taken: encode what moves
        a_true = model.predictor.norm(a[:, : z.shape[1] - 1])
        extra["inverse_loss"] = jnp.mean((model.infer_action(z[:, :-1], z[:, 1:]) - a_true) ** 2)
        loss = loss + cfg.inverse_weight * extra["inverse_loss"]
    copy = jnp.mean((z[:, :-1] - tgt[:, 1:]) ** 2)
    metrics = {
        "loss": loss,
        "tf_loss": tf_loss,
        "rollout_loss": roll_loss,
        "reg": reg,
        "tf_copy_ratio": tf_loss / (copy + 1e-12),
        "z_std_min": jnp.min(jnp.std(z.reshape((-1, z.shape[-1])), axis=0)),
        **extra,
    }
    return loss, metrics


# ---------------------------------------------------------------- train state and step


def lr_schedule(cfg: TrainConfig) -> optax.Schedule:
    """Linear warm-up from 0 to `lr`, then cosine decay to `lr * end_lr_fraction` at `steps`."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.lr,
        warmup_steps=min(cfg.warmup_steps, max(cfg.steps - 1, 0)),
        decay_steps=max(cfg.steps, 1),
        end_value=cfg.lr * cfg.end_lr_fraction,
    )


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(cfg.grad_clip),
        optax.adamw(lr_schedule(cfg), weight_decay=cfg.weight_decay),
    )


def validate_train_config(cfg: TrainConfig) -> None:
    """ConfigError (one line, naming the flag) for a config that cannot train: NaN/inf anywhere, a
    learning rate, clip or weight out of range, non-positive counts."""
    check_finite(cfg)
    if cfg.objective not in OBJECTIVES:
        raise ConfigError(f"--objective {cfg.objective!r}: expected one of {', '.join(OBJECTIVES)}")
    validate_model_config(cfg.model)
    check_regularizer(cfg.reg)
    if cfg.objective == "gcbc":
        gcbc.validate_gcbc_config(cfg)
    positive = {"steps": cfg.steps, "batch_size": cfg.batch_size, "rollout_steps": cfg.rollout_steps,
                "log_every": cfg.log_every, "eval_every": cfg.eval_every, "ckpt_every": cfg.ckpt_every,
                "keep_checkpoints": cfg.keep_checkpoints, "action_block": cfg.action_block,
                "lr": cfg.lr, "grad_clip": cfg.grad_clip}
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {value}")
    non_negative = {"teacher_forcing_weight": cfg.teacher_forcing_weight, "rollout_weight": cfg.rollout_weight,
                    "reg.weight": cfg.reg.weight, "inverse_weight": cfg.inverse_weight,
                    "weight_decay": cfg.weight_decay, "warmup_steps": cfg.warmup_steps}
    for name, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    for name, value in (("end_lr_fraction", cfg.end_lr_fraction), ("reg.ema_momentum", cfg.reg.ema_momentum)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
    if cfg.inverse_weight > 0 and cfg.model.inverse_hidden < 1:
        raise ConfigError(f"--inverse-weight {cfg.inverse_weight} needs >= 0 and, when > 0, --model.inverse-hidden > 0")


# ---------------------------------------------------------------- objectives


@dataclasses.dataclass(frozen=True)
class Objective:
    """What a training objective plugs into the shared loop (`train`); the rest (optimiser, checkpoints,
    resume, metrics, NaN guard, dataset checks) is the same for all."""

    init_model: Callable[[TrainConfig, dict], nnx.Module]  # (cfg, norm stats) -> the model to train
    loss: Callable  # (model, EMA target model | None, batch, key, cfg) -> (loss, metrics dict)
    make_sampler: Callable  # (blocked dataset, cfg, training episode ids) -> sampler with .iterate(start, n)
    heldout_check: Callable  # (ds, train ids, held-out ids, cfg) -> ((graphdef, state) -> metrics dict)
    extra_stats: Callable[[Any, TrainConfig], dict] = lambda ds, cfg: {}  # saved with the norm stats


def _jepa_heldout(ds, train_ids, heldout_ids, cfg: TrainConfig) -> Callable:
    eval_data = build_eval_data(ds, train_ids, heldout_ids, cfg.model.obs_key, cfg.window, seed=cfg.seed)
    return lambda graphdef, state: evaluate(graphdef, state, eval_data, cfg.model.history)


OBJECTIVE_IMPLS: dict[str, Objective] = {
    "jepa": Objective(lambda cfg, stats: init_world_model(cfg.model, seed=cfg.seed, stats=stats), compute_loss,
                      lambda ds, cfg, episodes: make_sampler(ds, cfg, episodes), _jepa_heldout),
    "gcbc": Objective(lambda cfg, stats: gcbc.init_gcbc_policy(cfg, stats), gcbc.gcbc_loss, gcbc.GoalSampler,
                      gcbc.heldout_check, gcbc.gcbc_stats),
}


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


@dataclasses.dataclass
class Trainer:
    """Everything static about a run: model structure, optimiser, the jitted step."""

    cfg: TrainConfig
    graphdef: nnx.GraphDef
    rest: nnx.State  # non-trainable model state (normalisation stats)
    graphdef_full: nnx.GraphDef  # graphdef of the whole model (for nnx.split(model) states)
    optimizer: optax.GradientTransformation
    step_fn: Callable  # (train_state, batch) -> (train_state, metrics), jitted (split over `mesh` when given)
    grads_fn: Callable  # (train_state, batch) -> ((loss, metrics), grads), not jitted: the step's gradient

    def full_state(self, params: nnx.State) -> nnx.State:
        return nnx.split(nnx.merge(self.graphdef, params, self.rest))[1]


def init_train_state(cfg: TrainConfig, stats: dict, mesh: jax.sharding.Mesh | None = None) -> tuple[Trainer, dict]:
    """(Trainer, train_state) where train_state = {params, opt_state, target, step, key} (a pytree).

    With a `mesh` of several devices (`jepa_mpc.parallel.data_mesh`) the step is jitted for batches split
    along it and a replicated state (`parallel.replicate`); it is the same computation on the global batch."""
    objective = OBJECTIVE_IMPLS[cfg.objective]
    model = objective.init_model(cfg, stats)
    graphdef, params, rest = split_model(model)
    optimizer = make_optimizer(cfg)
    ema = cfg.objective == "jepa" and cfg.reg.kind == "ema"  # an EMA target encoder is a JEPA regulariser
    state = {
        "params": params,
        "opt_state": optimizer.init(params),
        "target": jax.tree.map(jnp.copy, params) if ema else {},
        "step": jnp.zeros((), jnp.int32),
        "key": jax.random.key_data(jax.random.key(cfg.seed)),
    }

    def loss_and_grads(ts: dict, batch: dict) -> tuple[tuple[jax.Array, dict], nnx.State]:
        key = jax.random.fold_in(jax.random.wrap_key_data(ts["key"]), ts["step"])

        def loss_fn(params):
            m = nnx.merge(graphdef, params, rest)
            tm = nnx.merge(graphdef, ts["target"], rest) if ema else None
            return objective.loss(m, tm, batch, key, cfg)

        return jax.value_and_grad(loss_fn, has_aux=True)(ts["params"])

    def train_step(ts: dict, batch: dict) -> tuple[dict, dict]:
        (_, metrics), grads = loss_and_grads(ts, batch)
        updates, opt_state = optimizer.update(grads, ts["opt_state"], ts["params"])
        params = optax.apply_updates(ts["params"], updates)
        target = ts["target"]
        if ema:
            m = cfg.reg.ema_momentum
            target = jax.tree.map(lambda t, p: m * t + (1.0 - m) * p, target, params)
        metrics["grad_norm"] = optax.global_norm(grads)
        metrics["params_finite"] = _all_finite(params)  # checked before the new state is kept or saved
        new = {**ts, "params": params, "opt_state": opt_state, "target": target, "step": ts["step"] + 1}
        return new, metrics

    if mesh is None or mesh.devices.size == 1:
        step_fn = jax.jit(train_step)
    else:
        whole, split = parallel.replicated(mesh), parallel.batch_sharding(mesh)
        step_fn = jax.jit(train_step, in_shardings=(whole, split), out_shardings=(whole, whole))
    trainer = Trainer(cfg, graphdef, rest, nnx.split(model)[0], optimizer, step_fn, loss_and_grads)
    return trainer, state


# ---------------------------------------------------------------- data


def make_sampler(ds, cfg: TrainConfig, episodes):
    from jepa_mpc.data.store import WindowSampler

    keys = (cfg.model.obs_key, "action")
    return WindowSampler(
        ds, cfg.batch_size, cfg.window, seed=cfg.seed, keys=keys, prefetch=cfg.prefetch, episodes=episodes
    )


# ---------------------------------------------------------------- run directory


_RESUME_FREE = {"steps", "log_every", "eval_every", "ckpt_every", "keep_checkpoints", "prefetch"}


def check_resume_compatible(saved: TrainConfig, new: TrainConfig, where: str) -> None:
    """ConfigError naming the first field that differs in a way that changes the run."""
    if saved.model != new.model:
        for f in dataclasses.fields(saved.model):
            a, b = getattr(saved.model, f.name), getattr(new.model, f.name)
            if a != b:
                raise ConfigError(
                    f"{where}: checkpoint was trained with model.{f.name}={a!r}, now {b!r}; "
                    f"use a new --run directory (or the same config) to resume"
                )
    sd, nd = to_dict(saved), to_dict(new)
    for name in sd:
        if name in _RESUME_FREE or name == "model":
            continue
        if sd[name] != nd[name]:
            raise ConfigError(
                f"{where}: run was started with {name}={sd[name]!r}, now {nd[name]!r}; "
                f"use a new --run directory to change it"
            )


class MetricsLog:
    """metrics.jsonl (+ TensorBoard). On resume, lines after the restored step are dropped."""

    def __init__(self, run_dir: Path, resume_step: int, tensorboard: bool = True):
        self.path = run_dir / "metrics.jsonl"
        if self.path.exists():
            keep = []
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= resume_step:
                        keep.append(line)
                except json.JSONDecodeError:
                    pass
            write_bytes_atomic(self.path, "".join(x + "\n" for x in keep).encode())
        self.file = self.path.open("a")
        self.tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=resume_step + 1 if resume_step else None)

    def write(self, step: int, split: str, values: dict) -> None:
        rec = {"step": int(step), "split": split, **{k: _num(v) for k, v in values.items()}}
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in rec.items():
                if k not in ("step", "split") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{split}/{k}", v, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def _num(v: Any) -> Any:
    if isinstance(v, (int, str)):
        return v
    v = float(v)
    return v if math.isfinite(v) else str(v)


class NullLog:
    """The metrics log of a process that writes none (every process but the first of a --distributed run)."""

    def write(self, step: int, split: str, values: dict) -> None: ...
    def close(self) -> None: ...


class _StopFlag:
    """SIGINT/SIGTERM -> checkpoint at the next step boundary, then KeyboardInterrupt."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


# ---------------------------------------------------------------- the loop


@dataclasses.dataclass
class TrainResult:
    step: int
    params: nnx.State
    last_metrics: dict
    last_eval: dict
    steps_per_s: float


def training_sessions(earlier: list[dict], start: int, total: int) -> list[dict]:
    """The run's record of the code that trained it: `earlier` sessions plus this one ({"git_commit",
    "git_dirty", "from_step"}) when it trains steps (start < total) with code in another git state than
    the last recorded session's. Re-opening a finished run, or resuming it with the same code, keeps the
    record (and so config.json's digest) as it was."""
    if start >= total:
        return list(earlier)
    state = provenance.git_state()
    if earlier and {k: earlier[-1].get(k) for k in state} == state:
        return list(earlier)
    return [*earlier, {**state, "from_step": int(start)}]


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    data_path: str = "",
    dataset=None,
    progress: bool = True,
    tensorboard: bool = True,
    batch_hook: Callable[[int, dict], dict] | None = None,
    devices: int = 0,
) -> TrainResult:
    """Train (or resume) a world model (or, with `cfg.objective` gcbc, a GCBC policy) in `run_dir`; returns
    the final state and metrics.

    `dataset` (an in-memory Dataset) replaces opening `data_path`; `batch_hook(step, batch)` may
    rewrite batches (tests use it to inject NaNs). `devices`: split each batch over the first `devices`
    devices (0: all; `jepa_mpc.parallel`), in a `--distributed` run over every process's devices, where
    each process reads only its rows of each batch and only process 0 writes logs.
    """
    from tqdm import tqdm

    validate_train_config(cfg)
    mesh = parallel.data_mesh(devices)
    split = mesh.devices.size > 1
    if split:
        parallel.check_batch_divides(cfg.batch_size, mesh)
    primary, multi = parallel.is_primary(), jax.process_count() > 1
    run_dir = Path(run_dir)
    run = Run.open(run_dir) if Run.exists(run_dir) else None  # resuming: checked against what made it
    if run is not None:
        check_resume_compatible(run.config, cfg, str(run_dir / CONFIG_FILE))

    if dataset is None:
        ds = open_dataset(data_path, cfg)
    else:
        ds = dataset.action_blocks(cfg.action_block)
        check_dataset(ds, cfg)
    if run is not None:
        run.check_same_dataset(ds, str(data_path) if dataset is None else "<memory>")
    train_ids, heldout_ids = split_episodes(ds, cfg.held_out_fraction)
    objective = OBJECTIVE_IMPLS[cfg.objective]
    if run is not None and run.has_norm_stats:
        stats = run.norm_stats()  # ConfigError if they hold NaN/inf
    else:
        stats = ds.stats(train_ids)
        if cfg.model.obs_key == "pixels":
            stats["pixel_mean"] = mean_frame(ds.arrays["pixels"], ds.episode_lengths, train_ids)
        stats.update(objective.extra_stats(ds, cfg))
        check_norm_stats(stats, f"{ds.path or 'dataset'} (normalisation stats of its training episodes)")
    sampler = objective.make_sampler(ds, cfg, train_ids)
    sampler.rows = parallel.process_rows(cfg.batch_size)  # this process's rows of every batch
    heldout_check = objective.heldout_check(ds, train_ids, heldout_ids, cfg)

    trainer, ts = init_train_state(cfg, stats, mesh)
    if split:
        ts = parallel.replicate(ts, mesh)  # before a restore: the checkpoint is read back with this sharding
    run_dir.mkdir(parents=True, exist_ok=True)
    mngr = checkpoint_manager(run_dir, cfg.keep_checkpoints)
    start = mngr.latest_step() or 0
    if start:
        try:
            targets = {"params": ts["params"], "train": {k: v for k, v in ts.items() if k != "params"}}
            restored = restore_checkpoint(mngr, start, targets, str(run_dir / "checkpoints" / str(start)))
        except BaseException:
            mngr.close()
            raise
        ts = {**restored["train"], "params": restored["params"]}
    record = {"train": to_dict(cfg), "data": str(data_path),
              "dataset": dataset_identity(ds, str(data_path) if dataset is None else None),
              "dataset_meta": getattr(ds, "meta", {})}
    sessions = training_sessions(run.trained_by if run is not None else [], start, cfg.steps)
    if sessions:  # a finished run from before the record is re-written as it was
        record["trained_by"] = sessions
    if primary:
        write_json_atomic(run_dir / CONFIG_FILE, json.loads(json.dumps(record, default=str)))
        write_json_atomic(run_dir / STATS_FILE, {k: np.asarray(v).tolist() for k, v in stats.items()})

    def save(step: int, state: dict) -> None:
        mngr.save(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(state["params"]),
                train=ocp.args.StandardSave({k: v for k, v in state.items() if k != "params"}),
            ),
            force=True,
        )
        mngr.wait_until_finished()

    log = MetricsLog(run_dir, start, tensorboard) if primary else NullLog()
    last_metrics: dict = {}
    last_eval: dict = {}

    def run_eval(step: int, state: dict) -> dict:
        if not primary:
            return {}
        params = parallel.host_copy(state["params"]) if split else state["params"]  # checked on one device
        d = heldout_check(trainer.graphdef_full, trainer.full_state(params))
        log.write(step, "eval", d)
        return d

    schedule = lr_schedule(cfg)
    bar = tqdm(total=cfg.steps, initial=start, disable=not (progress and primary), desc="train", dynamic_ncols=True)
    t0, n_timed = time.perf_counter(), 0
    steps_per_s = 0.0
    step = start
    try:
        with _StopFlag() as stop:
            it = sampler.iterate(start, cfg.steps - start) if start < cfg.steps else iter(())
            for step_i, batch in it:
                if batch_hook is not None:
                    batch = batch_hook(step_i, batch)
                if split:
                    batch = parallel.global_batch(batch, mesh, cfg.batch_size)
                new_ts, metrics = trainer.step_fn(ts, batch)
                loss = float(metrics["loss"])
                params_finite = bool(metrics.pop("params_finite"))
                if not (math.isfinite(loss) and params_finite):
                    # `ts` (before this update) is finite: every kept state passed this check
                    if mngr.latest_step() != step_i:
                        save(step_i, ts)
                    what = f"non-finite loss ({loss})" if not math.isfinite(loss) else "non-finite parameters"
                    raise TrainingDiverged(
                        f"{what} at step {step_i + 1} of {run_dir}; last good checkpoint "
                        f"kept: {run_dir / 'checkpoints' / str(step_i)} (lower --lr or check the dataset)"
                    )
                ts, step = new_ts, step_i + 1
                n_timed += 1
                if step == start + 1:
                    t0, n_timed = time.perf_counter(), 0  # exclude compilation
                elif n_timed:
                    steps_per_s = n_timed / (time.perf_counter() - t0)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    last_metrics = {k: float(v) for k, v in metrics.items()}
                    last_metrics["steps_per_s"] = steps_per_s
                    last_metrics["lr"] = float(schedule(step))
                    log.write(step, "train", last_metrics)
                    bar.set_postfix(loss=f"{loss:.4f}", sps=f"{steps_per_s:.1f}")
                bar.update(1)
                if step % cfg.ckpt_every == 0 and step != cfg.steps:
                    save(step, ts)
                if step % cfg.eval_every == 0 and step != cfg.steps:
                    last_eval = run_eval(step, ts)
                stopping = stop.signum is not None
                if multi:  # every process stops at the same step (a scheduler signals them all)
                    stopping = step % cfg.log_every == 0 and parallel.any_process(stopping)
                if stopping:
                    if mngr.latest_step() != step:  # (a checkpoint step is saved already)
                        save(step, ts)
                    raise KeyboardInterrupt(f"stopped by signal {stop.signum} at step {step}; checkpoint saved")
        if step == cfg.steps:
            if mngr.latest_step() != step:
                save(step, ts)
            last_eval = run_eval(step, ts)
    finally:
        bar.close()
        log.close()
        mngr.close()
    return TrainResult(int(step), ts["params"], last_metrics, last_eval, steps_per_s)


# ---------------------------------------------------------------- CLI


@dataclasses.dataclass(frozen=True)
class TrainArgs:
    """jepa-mpc train --preset NAME --data DIR --run DIR [config overrides, e.g. --steps 500 --reg.kind none]"""

    data: str  # dataset directory (written by `jepa-mpc collect`)
    run: str  # run directory: checkpoints, config.json, metrics.jsonl; resumed if it has a checkpoint
    config: Annotated[TrainConfig, tyro.conf.arg(name="")] = TrainConfig()  # overrides of the preset's fields
    preset: str = "tworoom-state"  # a key of jepa_mpc.config.TRAIN_PRESETS (tworoom-state, tworoom-pixels, pusht-state, ...)
    quiet: bool = False  # no progress bar
    devices: int = 0  # split each batch over the first N devices (0: all; with --distributed, every process's)
    distributed: bool = False  # join a multi-process run ($JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, $JAX_PROCESS_ID or a cluster JAX detects)


def parse_train_cli(argv: Sequence[str]) -> TrainArgs:
    """Read --preset first, then parse everything with tyro using the preset as defaults.

    A bad flag or value is a one-line UserError (`jepa_mpc.cli.parse`); `--help` prints as usual."""
    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("--preset", default="tworoom-state")
    try:
        preset = pre.parse_known_args(list(argv))[0].preset
    except argparse.ArgumentError:  # `--preset` without a value: the full parse below names it
        preset = "tworoom-state"
    if preset not in TRAIN_PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (--preset); expected one of {', '.join(TRAIN_PRESETS)}")
    default = TrainArgs(data="", run="", config=TRAIN_PRESETS[preset], preset=preset)
    args = parse(TrainArgs, argv, prog="jepa-mpc train", default=default)
    if not args.data:
        raise ConfigError("missing --data DIR (the dataset to train on)")
    if not args.run:
        raise ConfigError("missing --run DIR (where checkpoints and metrics go)")
    return args


def train_main(argv: Sequence[str]) -> None:
    args = parse_train_cli(argv)
    output_dir(args.run, "--run")
    if args.distributed:
        parallel.init_distributed()
    result = train(args.config, args.run, args.data, progress=not args.quiet, devices=args.devices)
    if not parallel.is_primary():
        return
    e = result.last_eval
    print(f"trained {result.step} steps -> {args.run} ({result.steps_per_s:.1f} steps/s)")
    if e and args.config.objective == "gcbc":
        print(f"held-out: action MSE {e['heldout_action_mse']:.4f} (mean action: {e['heldout_mean_action_mse']:.4f}, "
              "normalised units)")
    elif e:
        print(
            f"held-out: R^2 {e['r2_state']:.4f} (pos {e['r2_position']:.4f}), pred/copy-last "
            f"{e['pred_copy_ratio']:.4f}, effective rank {e['effective_rank']:.1f}/{e['latent_dim']}"
        )
