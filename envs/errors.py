"""The errors of the task families: one line naming the problem and its place (file, field, flag).

A leaf module (it imports nothing): `jepa_mpc.errors` re-exports these classes, so
``except jepa_mpc.errors.UserError`` catches what an env raises and the CLI prints it and exits 2.
"""


class UserError(Exception):
    """Bad input from the user (file, flag, checkpoint). The CLI prints `str(err)` and exits 2."""


class TaskFileError(UserError):
    """Invalid task-suite file: the message names file, task index and field."""


class ConfigError(UserError):
    """Unknown preset/regulariser/planner/env id, or an incompatible checkpoint or shape."""


__all__ = ["UserError", "TaskFileError", "ConfigError"]
