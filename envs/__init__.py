"""MuJoCo tasks for jepa-mpc (import name `jepa_mpc_envs`).

Importing this package registers the Gymnasium ids of every env in `registry.REGISTRY`
("jepa_mpc_envs/TwoRoom-v0", "jepa_mpc_envs/Reacher-v0", "jepa_mpc_envs/PushT-v0",
"jepa_mpc_envs/TwoRoomLayouts-v0"):

    import gymnasium as gym, jepa_mpc_envs
    env = gym.make("jepa_mpc_envs/TwoRoom-v0", obs_type="pixels")

Modules: `tworoom` (Layout, build_mjcf, build_model, TwoRoomEnv, PixelRenderer,
state_to_mjstate, mjstate_to_state), `geometry` (pure-numpy predicates),
`tasks` (Task/Suite files: load_suite, save_suite, generate_suite, tasks_main),
`reacher` (two-link arm: ReacherEnv, build_model, ...), `pusht` (Push-T: PushTEnv, build_model,
generate_suite, ...), `tworoom_layouts` (a room per episode, held-out rooms), `registry` (EnvSpec per env id:
get_env_spec).
"""

import gymnasium as gym

from .geometry import AGENT_RADIUS, Box, Circle, Layout
from .tworoom import ENV_ID, PixelRenderer, TwoRoomEnv, build_mjcf, build_model, mjstate_to_state, state_to_mjstate

from .registry import REGISTRY, get_env_spec  # noqa: E402

for _spec in REGISTRY.values():
    if _spec.env_id not in gym.registry:
        gym.register(id=_spec.env_id, entry_point=_spec.entry_point, max_episode_steps=None)

__all__ = [
    "AGENT_RADIUS",
    "Box",
    "Circle",
    "ENV_ID",
    "Layout",
    "PixelRenderer",
    "TwoRoomEnv",
    "build_mjcf",
    "build_model",
    "get_env_spec",
    "mjstate_to_state",
    "state_to_mjstate",
]
