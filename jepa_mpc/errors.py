"""User-facing errors: one line that names the problem and where it is; the CLI exits 2."""


class UserError(Exception):
    """Bad input from the user (file, flag, checkpoint). The CLI prints `str(err)` and exits 2."""


class DatasetError(UserError):
    """Missing, truncated or corrupt dataset."""


class TaskFileError(UserError):
    """Invalid task-suite file: the message names file, task index and field."""


class ConfigError(UserError):
    """Unknown preset/regulariser/planner, or an incompatible checkpoint or shape."""


class CheckpointError(ConfigError):
    """Unreadable, corrupt or incompatible Orbax checkpoint. Orbax may leave reads running in background
    threads after its failure, so the CLI exits right after printing this (no trailing tracebacks)."""

    exit_immediately = True
