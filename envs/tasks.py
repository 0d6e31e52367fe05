"""Older import path of the suite functions (kept so code on other branches keeps importing them).

New code imports from `suites` (Task, Suite, save_suite, ...), `registry` (load_suite) and
`tworoom_tasks` (the TwoRoom parser and generator). The `tasks` CLI verb is jepa_mpc/tasks_cli.py.
"""

from .geometry import Box, Circle, Hazard, Layout
from .registry import load_suite
from .registry import suite_from_dict as any_suite_from_dict
from .suites import SCHEMA_VERSION, Suite, Task, save_suite, shipped_suite_path, suite_to_dict
from .tworoom_tasks import generate_suite, suite_from_dict

__all__ = ["SCHEMA_VERSION", "Box", "Circle", "Hazard", "Layout", "Task", "Suite", "load_suite", "save_suite",
           "suite_to_dict", "generate_suite", "suite_from_dict", "shipped_suite_path", "any_suite_from_dict"]
