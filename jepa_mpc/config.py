"""Frozen dataclass configs for every stage, and presets per environment.

Each stage owns one section below. Configs are saved next to every artifact
(as JSON via `to_dict`) and can be overridden field by field from the CLI (tyro).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import typing
from typing import Any


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a (nested) config dataclass. A member of a tagged union (a class with a
    ``kind``, e.g. a planner config or a goal cost) records its kind first: ``{"kind": "cem", ...}``."""
    return _plain(cfg)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind = getattr(type(value), "kind", None)
        tag = {"kind": kind} if isinstance(kind, str) else {}
        return {**tag, **{f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


def without_defaults(tree: dict, defaults: dict[str, Any]) -> dict:
    """A copy of the nested dict `tree` (a `to_dict` result) without each dotted field of `defaults` that
    holds its value there. Identities (an eval's, a training run's digest) list the fields added after
    results were recorded this way, so those results keep their identity while the field is at its default."""
    out = copy.deepcopy(tree)
    for path, default in defaults.items():
        *parents, leaf = path.split(".")
        node = out
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == default:
            del node[leaf]
    return out


def first_difference(old: Any, new: Any, where: str = "") -> tuple[str, Any, Any] | None:
    """(dotted field path, old leaf, new leaf) of the first differing leaf of two JSON values (dicts are
    compared key by key, sorted), None if they are equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            diff = first_difference(old.get(k), new.get(k), f"{where}.{k}" if where else k)
            if diff:
                return diff
        return None
    return None if old == new else (where, old, new)


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def check_finite(cfg: Any, prefix: str = "--") -> None:
    """Every float field of a (nested) config dataclass is finite, else a one-line ConfigError naming
    the flag (`prefix` + dotted field path with dashes, e.g. `--control.safety-buffer`)."""
    from jepa_mpc.errors import ConfigError

    hints = typing.get_type_hints(type(cfg), include_extras=True)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        flag = prefix + f.name.replace("_", "-")
        for meta in getattr(hints.get(f.name), "__metadata__", ()):  # a flag renamed for the CLI (tyro.conf.arg)
            if getattr(meta, "prefix_name", True) is False and getattr(meta, "name", None):
                flag = "--" + meta.name.replace("_", "-")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_finite(value, flag + ".")
            continue
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{flag} must be a finite number, got {v}")


# ---------------------------------------------------------------- collection (data/)
# (owned by the data stage)

COLLECT_POLICIES = ("ou", "uniform")


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    """Reward-free exploration rollouts written as a chunked dataset (`jepa-mpc collect`).

    An existing `out` directory with the same options is resumed at its first missing chunk.
    """

    out: str = "data/tworoom"  # dataset directory (created; resumed if it exists)
    env_id: str = "jepa_mpc_envs/TwoRoom-v0"
    layout: str = "default"  # "default", a JSON file of Layout fields, or inline JSON '{"door_width": 0.4}'
    num_episodes: int = 500
    episode_len: int = 100  # control steps (actions) per episode; T+1 states
    frame_skip: int = 5  # physics steps per action
    policy: str = "ou"  # ou (temporally correlated, crosses the door often) | uniform (i.i.d.)
    ou_theta: float = 0.5  # OU mean reversion rate (1/s); correlation time 1/theta
    ou_sigma: float = 1.1  # OU noise scale; stationary std = sigma / sqrt(2 theta)
    ou_dt: float = 0.05  # OU integration step (s); = control dt by default
    pixels: bool = False  # also render 64x64 RGB frames of every state
    render_size: int = 64
    seed: int = 0  # chunk i uses np.random.default_rng([seed, i])
    chunk_episodes: int = 50  # episodes per chunk file (the unit of resumption)

# ---------------------------------------------------------------- model + training
# (owned by the model/train stage)

REGULARIZERS = ("sigreg", "vicreg", "ema", "none")
PREDICTORS = ("mlp", "transformer", "conv")
OBS_KEYS = ("state", "pixels")


@dataclasses.dataclass(frozen=True)
class RegularizerConfig:
    """Anti-collapse regulariser on the embeddings (computed over the whole batch)."""

    kind: str = "sigreg"  # sigreg | vicreg | ema | none
    weight: float = 0.1  # lambda multiplying the regulariser term
    num_projections: int = 256  # SIGReg: random 1-D projections, fresh every step
    num_knots: int = 17  # SIGReg: trapezoid quadrature knots on t in [0, t_max]
    t_max: float = 3.0  # SIGReg: upper end of the quadrature interval
    vicreg_var_coeff: float = 25.0  # VICReg: variance (hinge on std) coefficient
    vicreg_cov_coeff: float = 1.0  # VICReg: covariance (off-diagonal) coefficient
    ema_momentum: float = 0.99  # EMA target: target <- m * target + (1 - m) * online


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """JEPA world model: encoder (MLP for state, CNN for pixels) + action-conditioned predictor."""

    obs_key: str = "state"  # state | pixels
    obs_dim: int = 4  # state vector size (state encoder)
    image_size: int = 64  # pixels: square RGB uint8 frames
    action_dim: int = 2
    latent_dim: int = 32
    encoder_hidden: tuple[int, ...] = (256, 256)  # MLP widths (state) / dense after CNN (pixels: first)
    cnn_channels: tuple[int, ...] = (32, 64, 128, 128)  # pixels: 4x4 stride-2 conv stages
    projector_hidden: int = 256  # projector: Linear -> LayerNorm -> GELU -> Linear(latent_dim)
    predictor: str = "mlp"  # mlp (residual MLP, z + f(z, a)) | transformer (over a latent history) | conv (spatial latents)
    predictor_hidden: int = 256
    predictor_depth: int = 2  # hidden layers (mlp) / attention blocks (transformer)
    history: int = 1  # latents the predictor sees, the current one last (mlp: concatenated; transformer: attended; conv: 1)
    num_heads: int = 4  # transformer predictor
    inverse_hidden: int = 0  # >0: an inverse-dynamics head (z_t, z_t+1) -> a_t of this width (training only)
    latent_channels: int = 0
    """Pixels: 0, the latent is one vector from the CNN's pooled features; > 0, a *spatial* latent: the CNN's
    last feature map (image_size / 2^len(cnn_channels) cells a side), each cell projected to this many
    channels, flattened (latent_dim must be side^2 x latent_channels). Use it with `predictor="conv"`."""

    @property
    def feature_side(self) -> int:
        """Pixels: cells a side of the CNN's last feature map (each conv stage halves the frame)."""
        return self.image_size // (2 ** len(self.cnn_channels))


OBJECTIVES = ("jepa", "gcbc")
GOAL_SAMPLING = ("uniform", "geometric")


@dataclasses.dataclass(frozen=True)
class GCBCConfig:
    """Goal-conditioned behaviour cloning (`--objective gcbc`): the offline baseline of OGBench's and
    LeWorldModel's tables, trained on the same reward-free data as the world model (jepa_mpc/gcbc.py).

    Hindsight relabelling: each example is an observation o_t and the action block a_t that followed it
    (the run's action blocks), with as goal the observation o_{t+k} of the same episode, k >= 1 blocks
    later (k <= the blocks left in the episode, so the goal is always reachable along the data):

    * `uniform` (default): k uniform on 1..(blocks left), a uniformly drawn future observation of the
      trajectory, as OGBench's GCBC (actor_p_trajgoal = 1, actor_geom_sample = False);
    * `geometric`: k ~ Geometric(geom_p) truncated to 1..(blocks left) (exactly, by inverse CDF),
      mean about 1 / geom_p blocks: nearer goals, as with a discount of 1 - geom_p.

    The policy sees the goal as eval gives it: state runs the family's declared goal features of the
    goal observation (envs/family.py `goal`, e.g. TwoRoom's (x, y); the rest is masked out), pixel runs
    the whole goal frame through the preset's CNN, shared with the current frame. Loss: mean squared
    error on the normalised action block (a Gaussian NLL with fixed unit variance); eval acts with
    the predicted mean, clipped to the action bounds.
    """

    goal_sampling: str = "uniform"  # uniform (k uniform on 1..blocks left, OGBench's) | geometric (truncated Geometric(geom_p))
    geom_p: float = 0.1  # geometric: success probability per block (mean k about 1 / geom_p)
    hidden: tuple[int, ...] = (512, 512, 512)  # policy MLP widths (LayerNorm + GELU), as OGBench's GCBC


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training of the JEPA world model (multi-step latent prediction + regulariser)."""

    model: ModelConfig = ModelConfig()
    reg: RegularizerConfig = RegularizerConfig()
    steps: int = 3000
    batch_size: int = 128
    rollout_steps: int = 4  # k: open-loop rollout steps in the loss (window = history + k)
    teacher_forcing_weight: float = 1.0  # one-step (teacher-forced) prediction loss weight
    rollout_weight: float = 1.0  # k-step open-loop rollout loss weight
    lr: float = 1e-3  # peak learning rate (AdamW)
    warmup_steps: int = 200
    end_lr_fraction: float = 0.05  # cosine decays to lr * this
    weight_decay: float = 1e-4
    grad_clip: float = 1.0  # global-norm clipping
    seed: int = 0
    log_every: int = 50
    eval_every: int = 500  # collapse diagnostics on held-out episodes
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    held_out_fraction: float = 0.1  # episodes kept out of training for diagnostics
    prefetch: int = 2
    action_block: int = 1  # env steps per model step: actions of k steps concatenated (model.action_dim = k * 2)
    inverse_weight: float = 0.0  # weight of the inverse-dynamics loss (needs model.inverse_hidden > 0)
    objective: str = "jepa"  # jepa (the world model) | gcbc (goal-conditioned behaviour cloning, a policy baseline)
    gcbc: GCBCConfig = GCBCConfig()  # objective gcbc: hindsight goal relabelling and policy widths (jepa_mpc.config.GCBCConfig)

    @property
    def window(self) -> int:
        return self.model.history + self.rollout_steps


# TrainConfig fields added after runs were recorded by the experiment runner (dotted paths): in a run's
# identity only when not at these defaults, so the runner keeps finding those runs and their evals.
TRAIN_IDENTITY_UNLESS_DEFAULT = {"model.latent_channels": 0}


def train_identity(cfg: TrainConfig) -> dict:
    """The resolved training config as it enters a run's identity (the experiment runner's digest)."""
    return without_defaults(to_dict(cfg), TRAIN_IDENTITY_UNLESS_DEFAULT)


def _state_preset(obs_dim: int = 4, raw_action_dim: int = 2, **train: Any) -> TrainConfig:
    """The state-model recipe every state preset shares (tuned on TwoRoom, 2 CPU cores, 50k OU
    transitions): latent 64, light SIGReg (0.01, 64 fresh projections a step: cheap on CPU), and one
    predictor step per planning block of 5 env steps (0.25 s), as LeWorldModel does; one predictor
    call per block keeps CEM at 300 x 30 x horizon 5 cheap. A wide latent with a light SIGReg keeps
    position linearly decodable (R^2 ~0.99) and the predictor well below copy-last."""
    return TrainConfig(
        model=ModelConfig(obs_dim=obs_dim, latent_dim=64, action_dim=5 * raw_action_dim),
        reg=RegularizerConfig(weight=0.01, num_projections=64),
        action_block=5,
        **train,
    )


def _pixels_preset(**model: Any) -> TrainConfig:
    """The 64x64 RGB recipe (tworoom-pixels, reused by every pixel preset): a CNN on the frame minus
    the dataset's mean frame (without it the CNN starts, and stays, collapsed: frames differ in a
    ~3 px agent), SIGReg 0.03 (between the state presets' 0.01 and 0.1), 3,000 steps of batch 32.
    TwoRoom: held-out position R^2 0.9996, one-step prediction / copy-last 0.074 (velocity is not
    visible in one frame: R^2 0.02)."""
    return TrainConfig(
        model=ModelConfig(obs_key="pixels", latent_dim=64, encoder_hidden=(256,), cnn_channels=(16, 32, 64, 128),
                          action_dim=10, **model),
        action_block=5,
        reg=RegularizerConfig(weight=0.03, num_projections=64),
        steps=3000,
        batch_size=32,
        lr=5e-4,
    )


TRAIN_PRESETS: dict[str, TrainConfig] = {
    "tworoom-state": _state_preset(),
    "tworoom-pixels": _pixels_preset(),
    # Reacher (envs/reacher.py): state (q1, q2, dq1, dq2), 2 torques; same model and budget as TwoRoom.
    "reacher-state": _state_preset(),
    "reacher-pixels": _pixels_preset(),
    # Push-T (envs/pusht.py): state (block x, y, angle + rates, pusher x, y + velocity, cos/sin angle),
    # 2 pusher-velocity actions; contact dynamics, so far more steps than TwoRoom. Held-out suite:
    # 75.0 % after 5,000 steps (prediction / copy-last 0.044), 81.0 % after 20,000 (0.032), 86.5 %
    # after 40,000 (0.029); goals that turn the T by >= 0.5 rad gain most (61.5 -> 76.9 -> 79.5 %).
    "pusht-state": _state_preset(obs_dim=12, steps=40000),
    "pusht-pixels": _pixels_preset(),
    # TwoRoomLayouts (envs/tworoom_layouts.py): a new room every episode, seen only in the frame.
    # The pixel recipe with more steps for the wider data, and an inverse-dynamics loss: without it
    # the encoder kept only the room (constant within an episode: perfectly predictable, and enough
    # spread for SIGReg) and dropped the agent (position R^2 -0.02, prediction = copy-last).
    "tworoom-layouts-pixels": dataclasses.replace(
        _pixels_preset(inverse_hidden=256), inverse_weight=1.0, steps=4000
    ),
    # OGBench cube-single (envs/ogbench_cube.py): a 27-number state, OGBench's 5-d arm commands.
    "ogbench-cube-single-state": _state_preset(obs_dim=27, raw_action_dim=5),
    # OGBench PointMaze (envs/ogbench_adapter.py) on our own reward-free OU data; the state recipe
    # (positions span ~0..21 maze units; the encoder normalises with the dataset's stats).
    "ogbench-pointmaze-state": _state_preset(),
}

# ---------------------------------------------------------------- planning + eval
# (owned by the planning stage)
# Planner configs (CEMConfig, MPPIConfig, GradientConfig, CEMGDConfig, RandomShootingConfig) live
# next to their planners in jepa_mpc/planning/; build one by name with
# jepa_mpc.planning.make_config(name, **overrides); the MPC settings (planner, goal cost, action
# blocks, safety) are jepa_mpc.control.ControlConfig, goal costs jepa_mpc/goals.py.
