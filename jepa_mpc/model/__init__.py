"""JEPA world model: encoders, predictors, the WorldModel module and run loading.

    from jepa_mpc.model import load_world_model
    wm = load_world_model("runs/state")       # LoadedModel
    z = wm.encode(obs_batch)                  # (..., D)
    zs = wm.rollout(z0, actions)              # (D,), (H, A) -> (H, D); jit/vmap-able
"""

from jepa_mpc.model.checkpoint import LoadedModel, load_world_model
from jepa_mpc.model.world_model import (
    WorldModel,
    encode,
    init_world_model,
    obs_shape,
    predict,
    rollout,
    split_model,
)

__all__ = [
    "LoadedModel",
    "WorldModel",
    "encode",
    "init_world_model",
    "load_world_model",
    "obs_shape",
    "predict",
    "rollout",
    "split_model",
]
