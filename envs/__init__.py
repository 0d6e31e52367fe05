"""MuJoCo tasks for jepa-mpc (import name `jepa_mpc_envs`).

Importing this package registers the Gymnasium id "jepa_mpc_envs/TwoRoom-v0":

    import gymnasium as gym, jepa_mpc_envs
    env = gym.make("jepa_mpc_envs/TwoRoom-v0", obs_type="pixels")

Modules: `tworoom` (Layout, build_mjcf, build_model, TwoRoomEnv, PixelRenderer,
state_to_mjstate, mjstate_to_state), `geometry` (pure-numpy predicates),
`tasks` (Task/Suite files: load_suite, save_suite, generate_suite, tasks_main).
"""

import gymnasium as gym

from .geometry import AGENT_RADIUS, Box, Circle, Layout
from .tworoom import ENV_ID, PixelRenderer, TwoRoomEnv, build_mjcf, build_model, mjstate_to_state, state_to_mjstate

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="jepa_mpc_envs.tworoom:TwoRoomEnv", max_episode_steps=None)

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
    "mjstate_to_state",
    "state_to_mjstate",
]
