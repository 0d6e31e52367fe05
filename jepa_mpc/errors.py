"""User-facing errors: one line that names the problem and where it is; the CLI exits 2.

`UserError`, `TaskFileError` and `ConfigError` are the env package's own classes
(jepa_mpc_envs/errors.py), so an error raised inside an env is caught as a `UserError` here too.
"""

from jepa_mpc_envs.errors import ConfigError, TaskFileError, UserError


class DatasetError(UserError):
    """Missing, truncated or corrupt dataset."""


class CheckpointError(ConfigError):
    """Unreadable, corrupt or incompatible Orbax checkpoint. Orbax may leave reads running in background
    threads after its failure, so the CLI exits right after printing this (no trailing tracebacks)."""

    exit_immediately = True


__all__ = ["UserError", "DatasetError", "TaskFileError", "ConfigError", "CheckpointError"]
