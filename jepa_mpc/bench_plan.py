"""`jepa-mpc bench plan`: planner latency and FLOP efficiency on a reference latent model.

The reference model is a residual MLP predictor, z' = z + W3 act(W2 act(W1 [z, a] + b1) + b2) + b3
with 64-d latents, 256 hidden units and 10-d block actions (action block 5 env steps x 2-d), random
weights, written with plain jnp. At LeWorldModel's CEM budget (300 samples x 30 iterations x
horizon 5) one plan is 9.1 GFLOP. Efficiency = model FLOPs per plan / plan time, as a fraction of
the fp32 throughput of a jitted 1024 x 1024 matmul measured in the same run (same compiler options).

All timed functions are compiled up front and then timed round-robin (one call of each per round),
so that load from other processes hits all of them alike; min and median over rounds are reported,
plus a CPU-time efficiency (FLOPs per process-CPU-second relative to the matmul's), which is less
sensitive to other processes sharing the cores.

What made CEM faster here (2-core Xeon, jax 0.10.2, same process, interleaved, min of 10-15):
  plain jitted CEM (jax.random.normal, unrolled horizon)           ~115 ms   (50 % of matmul)
  + lax.scan over the horizon instead of a Python loop  } together  ~97 ms
  + counter-hash Gaussian noise instead of jax.random   }           ~86 ms   (68 %)
  Eigen dots (xla_cpu_experimental_ynn_fusion_type=) instead of YNNPACK: ~6 % slower;
  YNNPACK dots only (=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT): same for scan, helps unrolled loops;
  precomputing the action projection for all steps in one matmul: ~35 % slower (worse fusion);
  vmap of a per-sequence rollout vs a hand-batched (N, D) rollout: same; top_k is < 1 %.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jepa_mpc import bench_peer
from jepa_mpc.atomic import write_json_atomic
from jepa_mpc.control import episode_chunk, map_episodes
from jepa_mpc.costs import goal_distance, latent_cost_fn, make_cost
from jepa_mpc.errors import ConfigError
from jepa_mpc.planning import PLANNERS, batched, get_planner, make_config, model_evaluations, plan
from jepa_mpc.planning.sharding import sample_sharding, shard_samples


@dataclasses.dataclass(frozen=True)
class BenchPlanArgs:
    planners: tuple[str, ...] = tuple(PLANNERS)
    """Planners to time, each at its default budget (CEM: 300 samples, 30 elites, 30 iterations)."""
    horizon: int = 5
    """Plan length in action blocks."""
    action_dim: int = 10
    """Block action size fed to the model (5 env steps x 2-d actions)."""
    latent_dim: int = 64
    hidden: int = 256
    activation: str = "gelu"
    """Predictor non-linearity: gelu (tanh approximation), relu or silu."""
    rollout: str = "scan"
    """Cost formulation: "scan" (batched cost, lax.scan over steps of one (samples, D) matmul chain),
    "unrolled" (batched, Python loop over steps, action projections of all steps in one matmul) or
    "vmap" (per-sequence lax.scan rollout through latent_cost_fn, vmapped by the planner)."""
    episodes: tuple[int, ...] = (1, 8, 32)
    """Episodes planned at once (vmap over episodes); >1 only for the planners in batch_planners."""
    plan_chunk: int = 0
    """Episodes vmapped together, slices run one after another, as `eval --plan-chunk` (0: auto, 8 at 300
    samples on CPU; -1: one vmap over all episodes)."""
    batch_planners: tuple[str, ...] = ("cem",)
    repeats: int = 10
    """Timed rounds after compilation."""
    iterations: int | None = None
    """Override every planner's iteration count (default: each planner's own default budget)."""
    compiler_options: tuple[str, ...] = ()
    """XLA options for every compiled function, NAME=VALUE, e.g.
    xla_cpu_experimental_ynn_fusion_type= (empty: Eigen dots instead of YNNPACK)."""
    seed: int = 0
    json_out: str | None = None
    """Also write the results as JSON here (atomically)."""
    shard_samples: bool = False
    """Split each plan's sample axis across the process's devices (on CPU start with
    XLA_FLAGS=--xla_force_host_platform_device_count=<cores>; see jepa_mpc/planning/sharding.py)."""
    peer: str | None = None
    """Also time another library's CEM on the same problem and budget, interleaved with ours, at every
    episode count: stable-worldmodel (needs the `peers` extra: make peers). See jepa_mpc/bench_peer.py."""


ROLLOUTS = ("scan", "unrolled", "vmap")
ACTIVATIONS: dict[str, Callable] = {"gelu": jax.nn.gelu, "relu": jax.nn.relu, "silu": jax.nn.silu}


# ------------------------------------------------------------------------ reference model


def init_reference_model(key, latent_dim: int, action_dim: int, hidden: int) -> dict:
    k1, k2, k3 = jax.random.split(key, 3)

    def dense(k, n_in, n_out):
        return jax.random.normal(k, (n_in, n_out), jnp.float32) / np.sqrt(n_in)

    return {
        "w1": dense(k1, latent_dim + action_dim, hidden), "b1": jnp.zeros(hidden),
        "w2": dense(k2, hidden, hidden), "b2": jnp.zeros(hidden),
        "w3": dense(k3, hidden, latent_dim) * 0.1, "b3": jnp.zeros(latent_dim),
    }


def step_flops(latent_dim: int, action_dim: int, hidden: int) -> int:
    """Matmul FLOPs of one predictor step for one sequence."""
    return 2 * ((latent_dim + action_dim) * hidden + hidden * hidden + hidden * latent_dim)


def predictor_step(params: dict, z, a, act: Callable):
    h = act(jnp.concatenate([z, a], axis=-1) @ params["w1"] + params["b1"])
    h = act(h @ params["w2"] + params["b2"])
    return z + h @ params["w3"] + params["b3"]


def scan_rollout(params: dict, act: Callable):
    """rollout_fn(z0 (D,), actions (T, A)) -> (T, D), one sequence (what a world model provides)."""

    def rollout(z0, actions):
        def body(z, a):
            z = predictor_step(params, z, a, act)
            return z, z

        return jax.lax.scan(body, z0, actions)[1]

    return rollout


def batched_goal_cost(params: dict, z0, goal, act: Callable, mode: str = "scan"):
    """(N, H, A) -> (N,) terminal squared goal distance, one (N, D) matmul chain per step.

    mode "scan": lax.scan over time-major actions (fastest measured here); "unrolled": a Python
    loop over the horizon with the action half of the first layer applied to all steps in one
    (N*H, A) matmul up front (XLA/YNNPACK fuses this worse).
    """
    d = z0.shape[-1]

    def scan_cost(actions):
        z = jnp.broadcast_to(z0, (actions.shape[0], d))

        def body(z, a):
            return predictor_step(params, z, a, act), None

        z, _ = jax.lax.scan(body, z, jnp.swapaxes(actions, 0, 1))
        return jnp.sum(jnp.square(z - goal), axis=-1)

    def unrolled_cost(actions):
        w1z, w1a = params["w1"][:d], params["w1"][d:]
        a_proj = jnp.einsum("nha,ak->hnk", actions, w1a) + params["b1"]
        z = jnp.broadcast_to(z0, (actions.shape[0], d))
        for t in range(actions.shape[1]):
            h = act(z @ w1z + a_proj[t])
            h = act(h @ params["w2"] + params["b2"])
            z = z + h @ params["w3"] + params["b3"]
        return jnp.sum(jnp.square(z - goal), axis=-1)

    return batched(scan_cost if mode == "scan" else unrolled_cost)


# ------------------------------------------------------------------------------- timing


def _compiler_options(items: tuple[str, ...]) -> dict:
    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--compiler-options: expected NAME=VALUE, got {item!r}")
        low = value.lower()
        options[name] = True if low == "true" else False if low == "false" else value
    return options


def _forward_equivalents(config) -> float:
    """Sequence evaluations in forward passes (a value-and-grad step counts as 3)."""
    name = type(config).__name__
    if name == "GradientConfig":
        return 3.0 * model_evaluations(config)
    if name == "CEMGDConfig":
        cem_part = config.samples * config.iterations
        return cem_part + 3.0 * (model_evaluations(config) - cem_part)
    return float(model_evaluations(config))


def time_round_robin(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
    """Call every fn once per round (after one warm-up call); wall and process-CPU seconds."""
    for fn in fns.values():
        jax.block_until_ready(fn())
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn())
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {
        name: {"min_s": min(wall[name]), "median_s": float(np.median(wall[name])),
               "cpu_min_s": min(cpu[name])}
        for name in fns
    }


def bench(args: BenchPlanArgs) -> dict:
    for name in args.planners + args.batch_planners:
        get_planner(name)
    if args.activation not in ACTIVATIONS:
        raise ConfigError(f"--activation: unknown {args.activation!r}; expected one of {', '.join(ACTIVATIONS)}")
    if args.rollout not in ROLLOUTS:
        raise ConfigError(f"--rollout: unknown {args.rollout!r}; expected one of {', '.join(ROLLOUTS)}")
    if args.repeats <= 0 or any(e <= 0 for e in args.episodes):
        raise ConfigError("--repeats and --episodes must be positive")
    options = _compiler_options(args.compiler_options)
    if args.peer is not None:
        bench_peer.check_peer(args.peer)
        cem_solver = bench_peer.load_cem_solver()
    act = ACTIVATIONS[args.activation]
    key = jax.random.PRNGKey(args.seed)
    k_model, k_z, k_goal, k_plan, k_mm = jax.random.split(key, 5)
    params = init_reference_model(k_model, args.latent_dim, args.action_dim, args.hidden)
    flops_step = step_flops(args.latent_dim, args.action_dim, args.hidden)

    def make_cost_fn(z0, goal, sharding=None):
        if args.rollout != "vmap":
            return shard_samples(batched_goal_cost(params, z0, goal, act, args.rollout), sharding)
        cost = make_cost({"goal": (goal_distance(), 1.0)})
        return shard_samples(latent_cost_fn(scan_rollout(params, act), z0, {"goal": goal}, cost), sharding)

    fns, rows = {}, {}
    mm = jax.random.normal(k_mm, (1024, 1024), jnp.float32)
    mm_fn = jax.jit(lambda a: a @ a).lower(mm).compile(options)
    fns["matmul"] = lambda: mm_fn(mm)

    overrides = {} if args.iterations is None else {"iterations": args.iterations}
    for name in dict.fromkeys(args.planners + args.batch_planners):
        config = make_config(name, horizon=args.horizon, **overrides)
        counts = args.episodes if name in args.batch_planners else (1,)
        if name not in args.planners:
            counts = tuple(e for e in counts if e > 1)
        for n_ep in counts:
            z0, goal = _problem(k_z, k_goal, n_ep, args.latent_dim)
            init = jnp.zeros((n_ep, args.horizon, args.action_dim))
            keys = jax.random.split(k_plan, n_ep)

            sharding = sample_sharding(config.samples) if args.shard_samples else None

            def one(z0, goal, init, key, config=config, sharding=sharding):
                return plan(make_cost_fn(z0, goal, sharding), init, key, config)

            chunk = 0 if args.plan_chunk < 0 else episode_chunk(config.samples, args.plan_chunk)
            batched_plan = lambda *xs, one=one, chunk=chunk: map_episodes(one, chunk, *xs)  # noqa: E731
            fn = jax.jit(batched_plan).lower(z0, goal, init, keys).compile(options)
            label = f"{name} x{n_ep}"
            fns[label] = lambda fn=fn, a=(z0, goal, init, keys): fn(*a)
            rows[label] = {
                "planner": name, "episodes": n_ep, "chunk": chunk if n_ep > 1 else None,
                "sample_devices": len(sharding.mesh.devices.flat) if sharding is not None else 1,
                "gflop": n_ep * _forward_equivalents(config) * args.horizon * flops_step / 1e9,
            }

    if args.peer is not None:
        cem_config = make_config("cem", horizon=args.horizon, **overrides)
        problems = {n: _problem(k_z, k_goal, n, args.latent_dim) for n in args.episodes}
        peer_fns = bench_peer.plan_fns(cem_solver, params, args.activation, cem_config, problems, args.seed)
        for n_ep, fn in peer_fns.items():
            label = f"{bench_peer.PEER_LABEL} x{n_ep}"
            fns[label] = fn
            rows[label] = {"planner": bench_peer.PEER_LABEL, "episodes": n_ep,
                           "gflop": n_ep * _forward_equivalents(cem_config) * args.horizon * flops_step / 1e9}

    timings = time_round_robin(fns, args.repeats)
    peak = 2 * 1024**3 / timings["matmul"]["min_s"] / 1e9
    peak_cpu = 2 * 1024**3 / timings["matmul"]["cpu_min_s"] / 1e9
    for label, row in rows.items():
        t = timings[label]
        row.update(t)
        row["per_episode_ms"] = 1e3 * t["min_s"] / row["episodes"]
        row["gflops"] = row["gflop"] / t["min_s"]
        row["efficiency"] = row["gflops"] / peak
        row["cpu_efficiency"] = (row["gflop"] / t["cpu_min_s"]) / peak_cpu
    result = {
        "args": dataclasses.asdict(args), "matmul_gflops": peak, "matmul": timings["matmul"],
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()], "rows": rows,
    }
    if args.peer is not None:
        cost_of = jax.jit(jax.vmap(lambda z0, goal, a: batched_goal_cost(params, z0, goal, act)(a[None])[0]))
        result["peer"] = {**bench_peer.peer_versions(), "compare": {
            n_ep: _compare_with_peer(fns, rows, n_ep, problems[n_ep], cost_of, cem_config) for n_ep in args.episodes}}
    return result


def _problem(k_z, k_goal, episodes: int, latent_dim: int):
    """(z0, goal), each (episodes, latent_dim): the same planning problems for every planner."""
    return jax.random.normal(k_z, (episodes, latent_dim)), jax.random.normal(k_goal, (episodes, latent_dim))


def _compare_with_peer(fns: dict, rows: dict, n_ep: int, problem, cost_of, config) -> dict:
    """Time ratio ours/peer (min over rounds) and the mean goal cost of the zero plan and of both
    plans (clipped to the config's action bounds)."""
    z0, goal = problem
    low, high = config.action_low, config.action_high
    mean_cost = lambda actions: float(jnp.mean(cost_of(z0, goal, jnp.clip(actions, low, high))))
    peer = f"{bench_peer.PEER_LABEL} x{n_ep}"
    peer_actions = jnp.asarray(fns[peer]())
    compare = {"initial_cost": mean_cost(jnp.zeros_like(peer_actions)),
               "peer_final_cost": mean_cost(peer_actions),
               "ours_over_peer": None, "ours_final_cost": None}
    ours = f"cem x{n_ep}"
    if ours in rows:
        compare["ours_over_peer"] = rows[ours]["min_s"] / rows[peer]["min_s"]
        compare["ours_final_cost"] = mean_cost(fns[ours]()[0])
        rows[peer]["ours_over_peer"] = compare["ours_over_peer"]
    return compare


def format_report(result: dict) -> str:
    args = result["args"]
    w = max([22] + [len(label) + 2 for label in result["rows"]])
    lines = [
        f"bench plan: model {args['latent_dim']}+{args['action_dim']} -> {args['hidden']} -> "
        f"{args['hidden']} -> {args['latent_dim']} ({args['activation']}), horizon {args['horizon']}, "
        f"rollout={args['rollout']}, {args['repeats']} rounds, device {result['devices'][0]}",
        f"XLA_FLAGS={result['xla_flags']!r} compiler_options={list(args['compiler_options'])}, "
        f"{len(result['devices'])} device(s)" + (", sample axis split across them" if args.get("shard_samples") else ""),
        f"fp32 1024^2 matmul: {result['matmul_gflops']:.0f} GFLOP/s (best of {args['repeats']})",
        f"{'planner':<{w}}{'GFLOP':>8}{'min ms':>9}{'median ms':>11}{'ms/episode':>12}{'GFLOP/s':>9}{'eff %':>7}{'cpu eff %':>10}",
    ]
    for label, row in result["rows"].items():
        lines.append(
            f"{label:<{w}}{row['gflop']:>8.2f}{1e3 * row['min_s']:>9.1f}{1e3 * row['median_s']:>11.1f}"
            f"{row['per_episode_ms']:>12.1f}{row['gflops']:>9.0f}{100 * row['efficiency']:>7.0f}"
            f"{100 * row['cpu_efficiency']:>10.0f}"
        )
    if "peer" in result:
        lines += bench_peer.format_lines(result["peer"])
    return "\n".join(lines)


def bench_plan_main(args: BenchPlanArgs) -> None:
    result = bench(args)
    print(format_report(result))
    if args.json_out:
        write_json_atomic(args.json_out, result, sort_keys=False)
