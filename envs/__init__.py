"""MuJoCo task families for jepa-mpc (import name `jepa_mpc_envs`); imports nothing from `jepa_mpc`.

Importing the package is light (no MuJoCo): it registers the Gymnasium ids of the built-in families
with string entry points, so the env module loads on `gym.make`:

    import gymnasium as gym, jepa_mpc_envs
    env = gym.make("jepa_mpc_envs/TwoRoom-v0", obs_type="pixels")

Modules: `family` (the TaskFamily protocol), `registry` (FAMILIES, get_family, load_suite), `suites`
(Task/Suite files: parsing helpers, save_suite, shipped_suite_path), `geometry` (pure-numpy
predicates and free-space sampling), `rollout` (batched mujoco.rollout collector), `mjx_rollout` (the same
rollouts with MJX, optional extra `mjx`), `errors`, and one
module per family: `tworoom` (+ `tworoom_tasks`), `reacher`, `pusht`, `tworoom_layouts`,
`ogbench_adapter`, `ogbench_cube`.
"""

import importlib

import gymnasium as gym

GYM_ENTRY_POINTS = {  # env id -> "module:EnvClass" of the built-in families (registry.FAMILIES; a test keeps them equal)
    "jepa_mpc_envs/TwoRoom-v0": "jepa_mpc_envs.tworoom:TwoRoomEnv",
    "jepa_mpc_envs/Reacher-v0": "jepa_mpc_envs.reacher:ReacherEnv",
    "jepa_mpc_envs/PushT-v0": "jepa_mpc_envs.pusht:PushTEnv",
    "jepa_mpc_envs/TwoRoomLayouts-v0": "jepa_mpc_envs.tworoom_layouts:TwoRoomLayoutsEnv",
}

for _env_id, _entry_point in GYM_ENTRY_POINTS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point, max_episode_steps=None)

_LAZY = {  # name -> module of the older top-level re-exports, loaded on first use
    "AGENT_RADIUS": "geometry", "Box": "geometry", "Circle": "geometry", "Layout": "geometry",
    "ENV_ID": "tworoom", "PixelRenderer": "tworoom", "TwoRoomEnv": "tworoom", "build_mjcf": "tworoom",
    "build_model": "tworoom", "mjstate_to_state": "tworoom", "state_to_mjstate": "tworoom",
    "REGISTRY": "registry", "get_family": "registry", "load_suite": "registry",
}


_SUBMODULES = ("base", "errors", "family", "geometry", "mjx_rollout", "ogbench_adapter", "ogbench_cube", "pusht",
               "reacher", "registry", "rollout", "suites", "tworoom", "tworoom_layouts", "tworoom_tasks")


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if name in _SUBMODULES:  # `import jepa_mpc_envs; jepa_mpc_envs.registry` (the package once imported them all)
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY) + ["GYM_ENTRY_POINTS"]
