"""The registry of task families: the pipeline's only way to an environment.

Registering a family is one line in `FAMILIES` (an instance of its `TaskFamily` subclass, see
envs/family.py; its Gymnasium id is registered when this module is imported); collect, train, eval (learned model, oracle, random), video and the `tasks` verb look
a family up by env id (`get_family(env_id)`). Ids ``ogbench:<dataset>`` resolve to the OGBench
families (optional extra `ogbench`; envs/ogbench_adapter.py).

`load_suite(path)` is the one suite loader: it reads the file and hands the document to the parser of
the family its ``env_id`` names.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import gymnasium as gym

from . import ogbench_adapter, ogbench_cube, pusht, reacher, tworoom, tworoom_layouts
from .errors import ConfigError
from .family import TaskFamily
from .suites import Ctx, Suite, read_suite_document

FAMILIES: tuple[TaskFamily, ...] = (
    tworoom.TwoRoomFamily(),
    reacher.ReacherFamily(),
    pusht.PushTFamily(),
    tworoom_layouts.TwoRoomLayoutsFamily(),
)

REGISTRY: dict[str, TaskFamily] = {family.env_id: family for family in FAMILIES}
ENV_IDS: tuple[str, ...] = tuple(REGISTRY)
TWOROOM, REACHER, PUSHT, TWOROOM_LAYOUTS = FAMILIES  # the built-in families by name

for _family in FAMILIES:  # the package's __init__ registers the built-in ids without loading MuJoCo; any other here
    if _family.env_id not in gym.registry:
        gym.register(id=_family.env_id, entry_point=_family.entry_point, max_episode_steps=None)


@functools.lru_cache(maxsize=None)
def ogbench_family(env_id: str) -> TaskFamily:
    dataset = env_id[len(ogbench_adapter.PREFIX):]
    if ogbench_cube.is_cube_dataset(dataset):
        return ogbench_cube.OGBenchCubeFamily(env_id)
    return ogbench_adapter.PointMazeFamily(env_id)


def get_family(env_id: str) -> TaskFamily:
    """The family of `env_id`; an unknown id is a one-line ConfigError listing the known ids (an
    'ogbench:' id without the extra installed names the install command)."""
    if ogbench_adapter.is_ogbench_id(env_id):
        return ogbench_family(env_id)
    family = REGISTRY.get(env_id)
    if family is None:
        raise ConfigError(f"unknown env id {env_id!r}; known: {', '.join(ENV_IDS)}")
    return family


def is_known_env_id(env_id: Any) -> bool:
    """A registered id or an 'ogbench:' id (which may still be unknown to OGBench: `get_family` says so)."""
    return isinstance(env_id, str) and (env_id in REGISTRY or ogbench_adapter.is_ogbench_id(env_id))


def suite_from_dict(d: Any, path: str = "<dict>") -> Suite:
    """Validate a suite document of any family: dispatched on its ``env_id``; one-line TaskFileError."""
    ctx = Ctx(path)
    if not isinstance(d, dict):
        raise ctx.err("<root>", "expected a JSON object")
    if "env_id" not in d:
        raise ctx.err("env_id", "missing key")
    env_id = d["env_id"]
    if not is_known_env_id(env_id):
        shown = repr(env_id) if isinstance(env_id, str) else type(env_id).__name__
        raise ctx.err("env_id", f"unknown env id {shown} (known: {', '.join(ENV_IDS)}, ogbench:<dataset>)")
    return get_family(env_id).suite_from_dict(d, path)


def load_suite(path: str | os.PathLike) -> Suite:
    """Load and validate a suite file of any family; raises TaskFileError (one line: file, task index,
    field) or, for an 'ogbench:' suite without the extra, ConfigError naming the install command."""
    path = os.fspath(path)
    return suite_from_dict(read_suite_document(path), path)


__all__ = ["FAMILIES", "REGISTRY", "ENV_IDS", "get_family", "is_known_env_id", "load_suite", "suite_from_dict",
           "TWOROOM", "REACHER", "PUSHT", "TWOROOM_LAYOUTS"]
