"""Fast reward-free data collection with batched `mujoco.rollout`, and its benchmark.

A chunk of E episodes is produced in one call: random free start states, whole (E, T, 2)
action arrays from an exploration policy, one multithreaded `rollout` over (E, T*frame_skip)
physics steps, then every frame_skip-th state is kept. Pixels (optional) are rendered
afterwards from the recorded states. Chunk i depends only on (config, i): its generator is
`np.random.default_rng([seed, i])`, so an interrupted collection resumes at the first missing
chunk and ends with the same dataset as an uninterrupted one. Resuming compares content, not
flags: every option but --out and the resolved layout's fields (an edited --layout file is refused),
and every finished chunk is read back and checked (HDF5 checksums, content digest, episode indices)
first; a bad one is named in one line, to be deleted and collected again by a rerun.

CLI: `jepa-mpc collect` -> `collect_main(CollectArgs)`,
     `jepa-mpc bench collect` -> `bench_collect_main(BenchCollectArgs)`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from pathlib import Path
from typing import Annotated, Literal

import tyro

import numpy as np

from jepa_mpc.config import COLLECT_POLICIES, CollectConfig, check_finite, first_difference
from jepa_mpc.provenance import git_commit, git_dirty, package_versions
from jepa_mpc.data import store
from jepa_mpc.data.policies import make_actions
from jepa_mpc.errors import ConfigError, DatasetError
from jepa_mpc.paths import output_dir
from jepa_mpc_envs.geometry import START_MARGIN, Layout, crossed_door, sample_free_positions  # noqa: F401  (re-exported)
from jepa_mpc_envs.registry import get_family
from jepa_mpc_envs.rollout import DEFAULT_SIM_BACKEND, SIM_BACKENDS
from jepa_mpc_envs.rollout import StateCollector  # noqa: F401  (re-exported: jepa_mpc.data.collect.StateCollector)
from jepa_mpc_envs.tworoom import PixelRenderer, build_model

# Settings that do not change the dataset's content (not compared when resuming).
NON_CONTENT_FIELDS = ("out",)
SimBackend = Literal[SIM_BACKENDS]
"""`--sim-backend`: the simulator of the rollouts (jepa_mpc_envs.rollout.SIM_BACKENDS)."""


@dataclasses.dataclass(frozen=True)
class CollectArgs(CollectConfig):
    """Reward-free exploration rollouts written as a chunked dataset (`jepa-mpc collect`).

    An existing `out` directory with the same options is resumed at its first missing chunk.
    """

    env_id: Annotated[str, tyro.conf.arg(aliases=("--env",))] = CollectConfig.env_id
    """Env id (envs/registry.py): jepa_mpc_envs/TwoRoom-v0 | jepa_mpc_envs/Reacher-v0."""
    sim_backend: SimBackend = DEFAULT_SIM_BACKEND
    """Simulator of the rollouts: mujoco (multithreaded mujoco.rollout on the CPU) | mjx (MJX on JAX's
    devices, e.g. a GPU; the optional extra `mjx`). The two agree to float tolerance, not bit for bit, so
    a dataset's meta.json records mjx (and resuming it needs the same backend)."""


def sim_backend(cfg: CollectConfig) -> str:
    """The simulator `cfg` collects with: `CollectArgs.sim_backend`; a plain CollectConfig (library callers,
    the experiment runner) collects with mujoco."""
    return getattr(cfg, "sim_backend", DEFAULT_SIM_BACKEND)


# ------------------------------------------------------------------ layout / config


def resolve_layout(spec: str, env_id: str = CollectConfig.env_id):
    """The env's layout from "default", a JSON file of layout fields, or an inline JSON object."""
    env = get_family(env_id)
    if spec in ("", "default"):
        return env.default_layout()
    text, where = spec, "--layout"
    if not spec.lstrip().startswith("{"):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"--layout {spec!r}: not 'default', inline JSON or an existing JSON file")
        text, where = path.read_text(), str(path)
    try:
        fields = json.loads(text)
        if not isinstance(fields, dict):
            raise ValueError("expected a JSON object of Layout fields")
        return env.layout_from_dict(fields)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}: invalid layout ({' '.join(str(err).split())})") from None


def validate_config(cfg: CollectConfig) -> None:
    check_finite(cfg)
    get_family(cfg.env_id).check_sim_backend(sim_backend(cfg))
    if cfg.policy not in COLLECT_POLICIES:
        raise ConfigError(f"--policy {cfg.policy!r} is unknown; expected one of: {', '.join(COLLECT_POLICIES)}")
    for name in ("num_episodes", "episode_len", "frame_skip", "chunk_episodes", "render_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(cfg, name)})")
    if not (cfg.ou_theta > 0 and cfg.ou_sigma >= 0 and cfg.ou_dt > 0):
        raise ConfigError("OU parameters need --ou-theta > 0, --ou-sigma >= 0, --ou-dt > 0")


def num_chunks(cfg: CollectConfig) -> int:
    return -(-cfg.num_episodes // cfg.chunk_episodes)


def chunk_episode_range(cfg: CollectConfig, index: int) -> tuple[int, int]:
    start = index * cfg.chunk_episodes
    return start, min(start + cfg.chunk_episodes, cfg.num_episodes)


# ------------------------------------------------------------------ sampling and physics


def render_pixels(renderer, states: np.ndarray, batch: int = 4096) -> np.ndarray:
    """(E, T+1, S, S, 3) uint8 frames of (E, T+1, 4) states, rendered in batches."""
    flat = states.reshape(-1, states.shape[-1])
    frames = np.empty((len(flat), renderer.size, renderer.size, 3), dtype=np.uint8)
    for i in range(0, len(flat), batch):
        frames[i : i + batch] = renderer.render_states(flat[i : i + batch])
    return frames.reshape(states.shape[:-1] + frames.shape[1:])


def policy_actions(cfg: CollectConfig, env, layout, rng: np.random.Generator, init: np.ndarray) -> np.ndarray:
    """(E, episode_len, A) open-loop actions of cfg's exploration policy for the E starts `init`."""
    actions = make_actions(
        cfg.policy, rng, len(init), cfg.episode_len, env.action_dim, ou_theta=cfg.ou_theta, ou_sigma=cfg.ou_sigma,
        ou_dt=cfg.ou_dt,
    )
    return env.exploration_actions(layout, rng, init, actions)  # family-specific open-loop shaping (Push-T)


def collect_chunk(cfg: CollectConfig, layout, collector: StateCollector, index: int, renderer=None) -> dict[str, np.ndarray]:
    """All arrays of chunk `index` (a pure function of cfg and index)."""
    first, last = chunk_episode_range(cfg, index)
    e = last - first
    rng = np.random.default_rng([cfg.seed, index])
    env = collector.env if collector.env is not None else get_family(cfg.env_id)
    init = env.sample_start_states(layout, rng, e)
    actions = policy_actions(cfg, env, layout, rng, init)
    arrays = collector.run(init, actions)
    arrays["action"] = arrays.get("action", actions)  # a closed-loop collector returns what it executed
    arrays["episode_length"] = np.full((e,), cfg.episode_len, dtype=np.int32)
    arrays["episode_index"] = np.arange(first, last, dtype=np.int64)
    if renderer is not None:
        arrays["pixels"] = render_pixels(renderer, arrays["state"])
    return arrays


# ------------------------------------------------------------------ meta


def saved_flags(cfg: CollectConfig) -> dict:
    """The options meta.json records as `config` (all but NON_CONTENT_FIELDS, the layout as given; the
    simulator only when it is not mujoco, so the datasets and digests from before the flag stay the same)."""
    flags = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NON_CONTENT_FIELDS}
    if flags.get("sim_backend") == DEFAULT_SIM_BACKEND:
        del flags["sim_backend"]
    return flags


def content_config(cfg: CollectConfig, layout) -> dict:
    """What determines the dataset's content (compared on resume): the saved flags with the layout's
    resolved fields in place of the --layout string (a layout file may have been edited since) and the
    simulator."""
    return json.loads(json.dumps({"sim_backend": DEFAULT_SIM_BACKEND, **saved_flags(cfg), "layout": layout.to_dict()}))


def stored_content(meta: dict) -> dict:
    """`content_config` of an existing dataset: its saved flags with the layout it was collected in (no
    recorded simulator: mujoco)."""
    return {"sim_backend": DEFAULT_SIM_BACKEND, **(meta.get("config") or {}), "layout": meta.get("layout")}


def make_meta(cfg: CollectConfig, layout, model) -> dict:
    obs_keys = ["state", "pixels"] if cfg.pixels else ["state"]
    return {
        "format": "jepa-mpc dataset",
        "format_version": store.FORMAT_VERSION,
        "status": "incomplete",
        "env_id": cfg.env_id,
        "layout": layout.to_dict(),
        "obs_keys": obs_keys,
        "array_keys": ["state", "action", "qpos", "qvel"] + (["pixels"] if cfg.pixels else []),
        "state_fields": list(get_family(cfg.env_id).state_fields),
        "render_size": cfg.render_size if cfg.pixels else None,
        "policy": cfg.policy,
        "policy_params": {"theta": cfg.ou_theta, "sigma": cfg.ou_sigma, "dt": cfg.ou_dt} if cfg.policy == "ou" else {},
        "seed": cfg.seed,
        "frame_skip": cfg.frame_skip,
        "timestep": float(model.opt.timestep),
        "control_dt": float(model.opt.timestep) * cfg.frame_skip,
        "num_episodes": cfg.num_episodes,
        "episode_len": cfg.episode_len,
        "chunk_episodes": cfg.chunk_episodes,
        "num_chunks": num_chunks(cfg),
        "chunk_seeds": "np.random.default_rng([seed, chunk_index])",
        "config": saved_flags(cfg),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _check_resumable(out: Path, cfg: CollectConfig, layout) -> dict | None:
    """The existing meta if `out` is a dataset of the same content (config and resolved layout); None if fresh."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise DatasetError(f"--out {out}: exists and is not a directory")
    if not (out / store.META_NAME).exists():
        if any(out.iterdir()):
            raise DatasetError(f"--out {out}: non-empty directory without meta.json; choose another --out")
        return None
    meta = store.read_meta(out)
    diff = first_difference(stored_content(meta), content_config(cfg, layout))
    if diff:
        k, old, new = diff
        raise DatasetError(
            f"{out / store.META_NAME}: dataset was collected with {k}={old!r}, not {new!r}; "
            f"use the same options to resume or another --out"
        )
    if meta["num_chunks"] != num_chunks(cfg):
        raise DatasetError(f"{out / store.META_NAME}: num_chunks is {meta['num_chunks']}, but its options make "
                           f"{num_chunks(cfg)} chunks (edited by hand?); collect into another --out")
    return meta


def verify_chunks(out: Path, cfg: CollectConfig, indices) -> None:
    """Each finished chunk reads back whole (HDF5 checksums and content digest) and holds the episodes
    it should; else a one-line DatasetError naming it (it is not re-collected: delete it, then rerun)."""
    again = "delete it and rerun `jepa-mpc collect` to collect it again"
    for i in sorted(indices):
        path = store.chunk_path(out, i)
        try:
            arrays = store.read_chunk(path, i)
        except DatasetError as err:
            raise DatasetError(f"{err}; {again}") from None
        first, last = chunk_episode_range(cfg, i)
        if not np.array_equal(arrays["episode_index"], np.arange(first, last)) or \
                arrays["state"].shape[1] != cfg.episode_len + 1:
            raise DatasetError(f"{path}: chunk {i} does not hold episodes {first}..{last - 1} of "
                               f"{cfg.episode_len} steps; {again}")


# ------------------------------------------------------------------ summary


def dataset_summary(path: str | os.PathLike) -> dict:
    """Episodes, steps, door-crossing fraction (from states; None for envs without rooms) and size on
    disk of a dataset directory (over the chunks present, so it also works on an incomplete dataset)."""
    import h5py

    path = Path(path)
    meta = store.read_meta(path)
    env = get_family(meta.get("env_id", CollectConfig.env_id))
    layout = env.layout_from_dict(meta["layout"])
    episodes = steps = crossed = 0
    has_rooms = env.episode_crossings(layout, np.zeros((0, 1, env.state_dim))) is not None  # None: no rooms
    for i in sorted(set(store.existing_chunks(path)) & set(range(int(meta["num_chunks"])))):
        p = store.chunk_path(path, i)
        try:
            with h5py.File(p, "r") as f:
                states, lengths = f["state"][()], f["episode_length"][()]
        except (OSError, KeyError) as err:
            raise DatasetError(f"{p}: chunk {i} is corrupt or truncated ({' '.join(str(err).split())[:200]})") from None
        episodes += len(states)
        steps += int(lengths.sum())
        if has_rooms:
            crossed += int(env.episode_crossings(layout, states).sum())
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return {
        "episodes": episodes,
        "steps": steps,
        "door_crossing_fraction": crossed / max(episodes, 1) if has_rooms else None,
        "size_bytes": size,
    }


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


# ------------------------------------------------------------------ collect


def collect(cfg: CollectConfig, progress: bool = True, max_chunks: int | None = None) -> dict:
    """Collect (or resume) the dataset described by `cfg` into `cfg.out`; returns a summary dict.

    `max_chunks` stops after writing that many new chunks (leaving an incomplete, resumable dataset).
    """
    from tqdm import tqdm

    validate_config(cfg)
    out = output_dir(cfg.out, "--out")
    env = get_family(cfg.env_id)
    layout = resolve_layout(cfg.layout, cfg.env_id)
    meta = _check_resumable(out, cfg, layout)
    model = env.build_model(layout)
    out.mkdir(parents=True, exist_ok=True)
    store.remove_stale_tmp(out)
    if meta is None:
        meta = make_meta(cfg, layout, model)
        store.write_meta(out, meta)
    total = num_chunks(cfg)
    present = set(store.existing_chunks(out))
    verify_chunks(out, cfg, present & set(range(total)))  # never call a dataset complete over a bad chunk
    todo = [i for i in range(total) if i not in present]
    resumed_from = todo[0] if todo and present else None
    if max_chunks is not None:
        todo = todo[:max_chunks]

    renderer = env.pixel_renderer(model, cfg.render_size) if cfg.pixels else None
    t_state = t_render = t_write = 0.0
    new_steps = new_frames = 0
    try:
        with env.make_collector(model, cfg.frame_skip, sim_backend(cfg)) as collector, tqdm(
            total=total, initial=len(present & set(range(total))), unit="chunk",
            desc="collect", disable=not progress,
        ) as bar:
            for i in todo:
                t0 = time.perf_counter()
                arrays = collect_chunk(cfg, layout, collector, i, renderer=None)
                t1 = time.perf_counter()
                if renderer is not None:
                    arrays["pixels"] = render_pixels(renderer, arrays["state"])
                    new_frames += arrays["pixels"].shape[0] * arrays["pixels"].shape[1]
                t2 = time.perf_counter()
                store.write_chunk(out, i, arrays)
                t3 = time.perf_counter()
                t_state, t_render, t_write = t_state + t1 - t0, t_render + t2 - t1, t_write + t3 - t2
                new_steps += int(arrays["episode_length"].sum())
                bar.update(1)
                bar.set_postfix(steps=new_steps)
    finally:
        if renderer is not None:
            renderer.close()

    complete = set(store.existing_chunks(out)) >= set(range(total))
    if complete and meta.get("status") != "complete":
        meta = dict(meta, status="complete")
        summary = dataset_summary(out)
        meta["summary"] = {k: summary[k] for k in ("episodes", "steps", "door_crossing_fraction")}
        store.write_meta(out, meta)
    summary = dataset_summary(out)
    summary.update(
        complete=complete,
        resumed_from_chunk=resumed_from,
        new_chunks=len(todo),
        new_steps=new_steps,
        state_steps_per_s=new_steps / t_state if t_state > 0 else float("nan"),
        frames_per_s=new_frames / t_render if t_render > 0 else float("nan"),
        write_s=t_write,
    )
    return summary


def print_summary(cfg: CollectConfig, s: dict) -> None:
    status = "complete" if s["complete"] else "INCOMPLETE (run the same command again to resume)"
    print(f"dataset {cfg.out}: {status}")
    if s["resumed_from_chunk"] is not None:
        print(f"  resumed at chunk {s['resumed_from_chunk']}, wrote {s['new_chunks']} new chunk(s)")
    print(f"  episodes       {s['episodes']:,} x {cfg.episode_len} control steps = {s['steps']:,} steps "
          f"(frame_skip {cfg.frame_skip}, policy {cfg.policy}, seed {cfg.seed})")
    if s["door_crossing_fraction"] is not None:
        print(f"  door crossing  {100 * s['door_crossing_fraction']:.1f} % of episodes change room")
    if s["new_steps"]:
        print(f"  speed          {s['state_steps_per_s']:,.0f} control steps/s "
              f"({s['state_steps_per_s'] * cfg.frame_skip:,.0f} physics steps/s) state collection on {sim_backend(cfg)}")
        if cfg.pixels:
            print(f"                 {s['frames_per_s']:,.0f} frames/s rendering ({cfg.render_size}x{cfg.render_size})")
    print(f"  size on disk   {_fmt_bytes(s['size_bytes'])}")


def collect_main(args: CollectArgs) -> None:
    """`jepa-mpc collect`: reward-free exploration rollouts -> chunked HDF5 dataset (resumable)."""
    print_summary(args, collect(args))


# ------------------------------------------------------------------ benchmark


@dataclasses.dataclass(frozen=True)
class BenchCollectArgs:
    """Throughput of state collection (mujoco.rollout, one thread per core, or MJX) and 64px rendering."""

    num_episodes: int = 1000  # episodes per rollout call
    episode_len: int = 100
    frame_skip: int = 5
    policy: str = "ou"
    render_frames: int = 4096  # frames per rendering repeat
    render_size: int = 64
    repeats: int = 5
    nthread: int = 0  # 0 = one per core (os.cpu_count()); mujoco only
    seed: int = 0
    sim_backend: SimBackend = DEFAULT_SIM_BACKEND
    """mujoco (mujoco.rollout threads) | mjx (MJX on JAX's default devices; its first call, which compiles, is
    timed apart)."""


def bench_collect(args: BenchCollectArgs) -> dict[str, list[float]]:
    layout = Layout()
    model = build_model(layout)
    cfg = CollectConfig(
        num_episodes=args.num_episodes * args.repeats, episode_len=args.episode_len, frame_skip=args.frame_skip,
        policy=args.policy, chunk_episodes=args.num_episodes, seed=args.seed,
    )
    validate_config(cfg)
    results: dict[str, list[float]] = {"rollout": [], "rollout_cpu": [], "chunk": [], "render": [], "first_call": []}
    family = get_family(cfg.env_id)
    collector = (StateCollector(model, args.frame_skip, args.nthread or None, env=family)
                 if args.sim_backend == DEFAULT_SIM_BACKEND else family.make_collector(model, args.frame_skip, args.sim_backend))
    with collector:
        rng = np.random.default_rng(args.seed)
        pos = sample_free_positions(layout, rng, args.num_episodes)
        init = np.concatenate([pos, np.zeros_like(pos)], axis=1)
        actions = make_actions(args.policy, rng, args.num_episodes, args.episode_len)
        warm = slice(None) if args.sim_backend == "mjx" else slice(0, 8)  # MJX compiles for the batch's shape
        t0 = time.perf_counter()
        collector.run(init[warm], actions[warm])  # warm-up
        results["first_call"].append(time.perf_counter() - t0)
        states = None
        for r in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            states = collector.run(init, actions)["state"]
            results["rollout"].append(time.perf_counter() - t0)
            results["rollout_cpu"].append(time.process_time() - c0)  # CPU time of all threads
            t0 = time.perf_counter()
            collect_chunk(cfg, layout, collector, r)
            results["chunk"].append(time.perf_counter() - t0)
    flat = states.reshape(-1, 4)
    frames = flat[np.random.default_rng(args.seed).integers(0, len(flat), args.render_frames)]
    renderer = PixelRenderer(model, args.render_size)
    try:
        renderer.render_states(frames[:16])  # warm-up (GL context, textures)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            renderer.render_states(frames)
            results["render"].append(time.perf_counter() - t0)
    finally:
        renderer.close()
    return results


def bench_collect_main(args: BenchCollectArgs) -> None:
    """`jepa-mpc bench collect`: prints steps/s and frames/s (min / median over repeats)."""
    res = bench_collect(args)
    steps = args.num_episodes * args.episode_len
    nthread = args.nthread or os.cpu_count()
    if args.sim_backend == DEFAULT_SIM_BACKEND:
        simulator = f"mujoco.rollout on {nthread} thread(s)"
    else:
        import jax

        devices = jax.local_devices()
        simulator = (f"{args.sim_backend} on {len(devices)} {devices[0].platform} device(s) (float64), "
                     f"first call (compile + run) {res['first_call'][0]:.1f} s")
    rows = [
        ("rollout only: control steps/s", steps, res["rollout"]),
        ("rollout only: physics steps/s", steps * args.frame_skip, res["rollout"]),
        ("rollout only: physics steps per CPU-second", steps * args.frame_skip, res["rollout_cpu"]),
        ("chunk (starts+policy+rollout): control steps/s", steps, res["chunk"]),
        ("chunk (starts+policy+rollout): physics steps/s", steps * args.frame_skip, res["chunk"]),
        (f"render {args.render_size}x{args.render_size}: frames/s", args.render_frames, res["render"]),
    ]
    print(f"bench collect: {args.num_episodes} episodes x {args.episode_len} steps, frame_skip {args.frame_skip}, "
          f"policy {args.policy}, {simulator}, {args.repeats} repeats, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'measure':<50} {'min':>12} {'median':>12} {'max':>12}")
    for name, count, times in rows:
        rates = count / np.asarray(times)
        print(f"{name:<50} {rates.min():>12,.0f} {np.median(rates):>12,.0f} {rates.max():>12,.0f}")
