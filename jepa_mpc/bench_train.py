"""`jepa-mpc bench train`: training throughput of presets and its FLOP efficiency.

For each preset, the jitted train step (`jepa_mpc.train.init_train_state`) runs on a real batch of the
preset's shape, drawn by the training sampler from a small synthetic point-mass dataset
(`jepa_mpc.model.fake_data`: state (x, y, vx, vy) and 64 px frames; the presets that train on such
observations: TwoRoom's and Reacher's). FLOPs per step are XLA's cost analysis of the compiled step;
efficiency = FLOP/s ÷ the fp32 1024² matmul throughput measured in the same run. Steps are timed in
two ways, round-robin with the matmul (min and median over rounds):

  * "sync": the loss read after every step (what `train` does: its NaN guard checks each step before the
    next);
  * "async": `steps` steps dispatched back to back, one wait at the end. Measured on 2 cores it was
    not faster (tworoom-state 62 against 67 steps/s, tworoom-pixels equal), so `train` keeps "sync".
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jepa_mpc.atomic import write_json_atomic
from jepa_mpc.config import TRAIN_PRESETS
from jepa_mpc.errors import ConfigError

FAKE_OBS_DIM = 4  # the synthetic dataset's state: (x, y, vx, vy)


@dataclasses.dataclass(frozen=True)
class BenchTrainArgs:
    presets: tuple[str, ...] = ("tworoom-state", "tworoom-pixels")
    """Train presets to time (their model, batch size and loss as `jepa-mpc train --preset` uses them)."""
    steps: int = 10
    """Train steps per timed call."""
    repeats: int = 5
    """Timed rounds after compilation."""
    seed: int = 0
    devices: int = 0
    """Split each batch over the first N devices, as `jepa-mpc train --devices` (0: all; on CPU, more
    than one only with XLA_FLAGS=--xla_force_host_platform_device_count=N)."""
    json_out: str | None = None
    """Also write the results as JSON here (atomically)."""


def _check(args: BenchTrainArgs) -> None:
    for name in args.presets:
        if name not in TRAIN_PRESETS:
            raise ConfigError(f"--presets: unknown preset {name!r}; expected one of: {', '.join(TRAIN_PRESETS)}")
        model = TRAIN_PRESETS[name].model
        if model.obs_key == "state" and model.obs_dim != FAKE_OBS_DIM:
            raise ConfigError(f"--presets: {name} trains on {model.obs_dim}-d states; bench train times presets of "
                              f"{FAKE_OBS_DIM}-d states or 64 px frames")
        if model.obs_key == "pixels" and model.image_size != 64:
            raise ConfigError(f"--presets: {name} trains on {model.image_size} px frames; bench train renders 64 px")
    if args.steps <= 0 or args.repeats <= 0:
        raise ConfigError("--steps and --repeats must be positive")


def preset_step(name: str, seed: int, devices: int = 1):
    """(step_fn, train state, one batch) of preset `name` on synthetic data; the batch split over the first
    `devices` devices (0: all) as `train` splits it."""
    from jepa_mpc import parallel
    from jepa_mpc.model.encoders import mean_frame
    from jepa_mpc.model.fake_data import make_fake_dataset
    from jepa_mpc.train import init_train_state, make_sampler

    cfg = dataclasses.replace(TRAIN_PRESETS[name], seed=seed)
    pixels = cfg.model.obs_key == "pixels"
    ds = make_fake_dataset(num_episodes=8, steps=100, seed=seed, pixels=pixels).action_blocks(cfg.action_block)
    episodes = np.arange(len(ds.episode_lengths))
    stats = ds.stats(episodes)
    if pixels:
        stats["pixel_mean"] = mean_frame(ds.arrays["pixels"], ds.episode_lengths, episodes)
    mesh = parallel.data_mesh(devices)
    trainer, ts = init_train_state(cfg, stats, mesh)
    sampler = make_sampler(ds, cfg, episodes)
    _, batch = next(iter(sampler.iterate(0, 1)))
    if mesh.devices.size == 1:
        return trainer.step_fn, ts, jax.device_put(batch)
    parallel.check_batch_divides(cfg.batch_size, mesh)
    return trainer.step_fn, parallel.replicate(ts, mesh), parallel.global_batch(batch, mesh, cfg.batch_size)


def step_flops(step_fn, ts, batch) -> float | None:
    """FLOPs of one compiled train step by XLA's cost analysis (None where the backend gives none)."""
    analysis = step_fn.lower(ts, batch).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return float(flops) if flops else None


def bench(args: BenchTrainArgs) -> dict:
    _check(args)
    from jepa_mpc.bench_plan import time_round_robin

    mm = jax.random.normal(jax.random.key(args.seed), (1024, 1024), jnp.float32)
    mm_fn = jax.jit(lambda a: a @ a)
    fns = {"matmul": lambda: mm_fn(mm)}
    rows = {}
    for name in args.presets:
        step_fn, ts, batch = preset_step(name, args.seed, args.devices)
        # the model's FLOPs per step: XLA's analysis of a split step counts one device's share
        flops = step_flops(*(preset_step(name, args.seed, 1) if len(batch["action"].sharding.device_set) > 1
                             else (step_fn, ts, batch)))

        def run_async(step_fn=step_fn, ts=ts, batch=batch):
            state = ts
            for _ in range(args.steps):
                state, metrics = step_fn(state, batch)
            return metrics["loss"]

        def run_sync(step_fn=step_fn, ts=ts, batch=batch):
            state = ts
            for _ in range(args.steps):
                state, metrics = step_fn(state, batch)
                float(metrics["loss"])
            return metrics["loss"]

        for mode, fn in (("async", run_async), ("sync", run_sync)):
            label = f"{name} {mode}"
            fns[label] = fn
            rows[label] = {"preset": name, "mode": mode, "batch_size": TRAIN_PRESETS[name].batch_size,
                           "gflop_per_step": None if flops is None else flops / 1e9}
    timings = time_round_robin(fns, args.repeats)
    peak = 2 * 1024**3 / timings["matmul"]["min_s"] / 1e9
    for label, row in rows.items():
        t = timings[label]
        row.update(t)
        row["steps_per_s"] = args.steps / t["min_s"]
        row["steps_per_s_median"] = args.steps / t["median_s"]
        gflop = row["gflop_per_step"]
        row["gflops"] = None if gflop is None else gflop * row["steps_per_s"]
        row["efficiency"] = None if gflop is None else row["gflops"] / peak
    return {"args": dataclasses.asdict(args), "matmul_gflops": peak, "matmul": timings["matmul"],
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()], "train_devices": args.devices or len(jax.devices()),
            "rows": rows,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def format_report(result: dict) -> str:
    args = result["args"]
    lines = [f"bench train: {args['steps']} steps per call, {args['repeats']} rounds, device {result['devices'][0]}"
             f" (batch split over {result.get('train_devices', 1)})",
             f"fp32 1024^2 matmul: {result['matmul_gflops']:.0f} GFLOP/s (best of {args['repeats']})",
             f"{'preset':<24}{'mode':<7}{'batch':>6}{'GFLOP/step':>12}{'steps/s':>9}{'median':>8}{'GFLOP/s':>9}{'eff %':>7}"]
    for row in result["rows"].values():
        known = row["gflop_per_step"] is not None
        gflop = f"{row['gflop_per_step']:.2f}" if known else "–"
        gflops = f"{row['gflops']:.0f}" if known else "–"
        eff = f"{100 * row['efficiency']:.0f}" if known else "–"
        lines.append(f"{row['preset']:<24}{row['mode']:<7}{row['batch_size']:>6}{gflop:>12}"
                     f"{row['steps_per_s']:>9.1f}{row['steps_per_s_median']:>8.1f}{gflops:>9}{eff:>7}")
    return "\n".join(lines)


def bench_train_main(args: BenchTrainArgs) -> None:
    result = bench(args)
    print(format_report(result))
    if args.json_out:
        write_json_atomic(args.json_out, result, sort_keys=False)
