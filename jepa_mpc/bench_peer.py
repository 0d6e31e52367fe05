"""`jepa-mpc bench plan --peer stable-worldmodel`: the peer's CEM on our reference planning problem.

The peer is stable-worldmodel's ``CEMSolver`` (torch, CPU). It gets a torch copy of the reference
predictor of ``bench_plan`` (same weights, same activation) behind the same terminal goal cost, at
our CEM config's budget (samples, iterations, elites, horizon, initial std) and action bounds, and
plans the same episodes (same z0 and goal). Its plan calls join ours in ``time_round_robin``, so
they are timed interleaved in one process; torch uses every core the process may run on.

The peer's API: ``CEMSolver(model, batch_size, num_samples, var_scale, n_steps, topk, device, seed)``,
``configure(action_space=Box of shape (n_envs, action), n_envs, config with .horizon and
.action_block)``, then ``solve(info_dict)["actions"]`` (n_envs, horizon, action). The model is a
"Costable": ``get_cost(info_dict, candidates (B, N, H, A)) -> (B, N)``, where every tensor of
``info_dict`` arrives expanded from (B, ...) to (B, N, ...). ``batch_size`` episodes are solved at
once (one (B, N) cost call per iteration).

Where its CEM differs from ours (same problem and budget either way):
  * it samples without clipping; the cost below clips the candidates to the action bounds before
    the rollout (as an environment would), and its returned mean is clipped for the cost check;
  * it refits the std with torch's unbiased std and has no std floor (ours: population std, floored
    at min_std); it calls the std "var" (var_scale is the initial std);
  * it returns the final elite mean; ours returns the best sequence evaluated;
  * it prints its solve time on every call (silenced here).

Only the solver subpackage is imported: ``stable_worldmodel/__init__`` also imports its data, env
and wrapper layers (lancedb, torchvision's compiled ops, cv2), none of which the solver uses, and
PyPI's torchvision wheels load only beside a CUDA build of torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import io
import os
import sys
import types
from collections.abc import Callable

import numpy as np

from jepa_mpc.errors import ConfigError

PEERS = ("stable-worldmodel",)
INSTALL_HINT = "install the extra: pip install 'jepa-mpc[peers]' (or make peers)"
PEER_LABEL = "stable-worldmodel cem"


def check_peer(name: str) -> None:
    if name not in PEERS:
        raise ConfigError(f"--peer: unknown {name!r}; expected one of {', '.join(PEERS)}")


def load_cem_solver() -> type:
    """stable-worldmodel's CEMSolver class (imported without the package's __init__, see above)."""
    missing = [m for m in ("torch", "stable_worldmodel") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"--peer stable-worldmodel: {' and '.join(missing)} not installed; {INSTALL_HINT}")
    stub = None
    if "stable_worldmodel" not in sys.modules:
        stub = types.ModuleType("stable_worldmodel")
        stub.__path__ = list(importlib.util.find_spec("stable_worldmodel").submodule_search_locations)
        sys.modules["stable_worldmodel"] = stub
    try:
        from stable_worldmodel.solver.cem import CEMSolver
    except ImportError as err:
        raise ConfigError(f"--peer stable-worldmodel: cannot import its CEM solver ({err}); {INSTALL_HINT}") from None
    finally:
        if stub is not None and sys.modules.get("stable_worldmodel") is stub:
            del sys.modules["stable_worldmodel"]  # a later `import stable_worldmodel` runs the real one
    return CEMSolver


# ------------------------------------------------------------------------ torch model and cost


def torch_activation(name: str):
    import torch

    return {"gelu": lambda: torch.nn.GELU(approximate="tanh"),  # jax.nn.gelu's default
            "relu": torch.nn.ReLU, "silu": torch.nn.SiLU}[name]()


def torch_mlp(params: dict, activation: str):
    """The reference predictor's residual MLP as torch Linear layers holding the same weights."""
    import torch

    layers = []
    for i in (1, 2, 3):
        w = np.array(params[f"w{i}"], np.float32)
        linear = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w.T.copy()))
            linear.bias.copy_(torch.from_numpy(np.array(params[f"b{i}"], np.float32)))
        layers += [linear, torch_activation(activation)] if i < 3 else [linear]
    return torch.nn.Sequential(*layers).eval()


def torch_step(mlp, z, a):
    """z' = z + mlp([z, a]) (bench_plan.predictor_step in torch)."""
    import torch

    return z + mlp(torch.cat([z, a], dim=-1))


@dataclasses.dataclass(frozen=True)
class GoalCostModel:
    """The peer's Costable: squared distance of the final latent to the goal, after rolling the
    torch predictor from z0 through the candidates clipped to [low, high]."""

    mlp: object
    low: float
    high: float

    def get_cost(self, info_dict: dict, candidates):
        """(B, N, H, A) candidates, info_dict z0 and goal (B, N, D) -> (B, N)."""
        z, actions = info_dict["z0"], candidates.clamp(self.low, self.high)
        for t in range(actions.shape[-2]):
            z = torch_step(self.mlp, z, actions[..., t, :])
        return (z - info_dict["goal"]).square().sum(dim=-1)

    criterion = get_cost

    def parameters(self):  # the solver reads its dtype from the first parameter
        return self.mlp.parameters()


@dataclasses.dataclass(frozen=True)
class PeerPlanShape:
    """What CEMSolver.configure reads from stable-worldmodel's PlanConfig."""

    horizon: int
    action_block: int = 1


# ------------------------------------------------------------------------------- entries


def peer_versions() -> dict:
    import torch

    return {"name": PEERS[0], "version": importlib.metadata.version("stable-worldmodel"),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def plan_fns(cem_solver: type, params: dict, activation: str, config, problems: dict, seed: int,
             ) -> dict[int, Callable[[], np.ndarray]]:
    """episodes -> a no-argument call of the peer's solve on that problem, returning (E, H, A) actions.

    ``problems`` maps an episode count to (z0 (E, D), goal (E, D)); ``config`` is our CEMConfig
    (its samples, iterations, elites, horizon, init_std and scalar action bounds are used).
    """
    import gymnasium as gym
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    low, high = float(config.action_low), float(config.action_high)
    model = GoalCostModel(torch_mlp(params, activation), low, high)
    fns = {}
    for n_ep, (z0, goal) in problems.items():
        solver = cem_solver(
            model, batch_size=n_ep, num_samples=config.samples, var_scale=config.init_std * 0.5 * (high - low),
            n_steps=config.iterations, topk=config.elites, device="cpu", seed=seed,
        )
        action_dim = params["w1"].shape[0] - z0.shape[-1]
        solver.configure(action_space=gym.spaces.Box(low, high, shape=(n_ep, action_dim), dtype=np.float32),
                         n_envs=n_ep, config=PeerPlanShape(horizon=config.horizon))
        info = {"z0": torch.from_numpy(np.array(z0, np.float32)),
                "goal": torch.from_numpy(np.array(goal, np.float32))}

        def solve(solver=solver, info=info) -> np.ndarray:
            with contextlib.redirect_stdout(io.StringIO()):
                return solver.solve(info)["actions"].numpy()

        fns[n_ep] = solve
    return fns


def format_lines(peer: dict) -> list[str]:
    """The comparison lines under the bench plan table."""
    lines = [f"peer: {peer['name']} {peer['version']} CEMSolver, torch {peer['torch']} "
             f"({peer['torch_threads']} threads); ours/peer < 1: ours faster"]
    for n_ep, c in peer["compare"].items():
        ratio = "n/a" if c.get("ours_over_peer") is None else f"{c['ours_over_peer']:.2f}"
        ours = "n/a" if c.get("ours_final_cost") is None else f"{c['ours_final_cost']:.3f}"
        lines.append(f"  x{n_ep}: ours/peer time {ratio}; goal cost from zero plan {c['initial_cost']:.3f} "
                     f"-> ours {ours}, peer {c['peer_final_cost']:.3f} (mean over episodes)")
    return lines
