"""Config-wide checks shared by every verb."""

import dataclasses

import pytest

from jepa_mpc.config import TrainConfig, check_finite
from jepa_mpc.errors import ConfigError


def test_check_finite_names_the_nested_flag():
    check_finite(TrainConfig())
    bad = dataclasses.replace(TrainConfig(), reg=dataclasses.replace(TrainConfig().reg, weight=float("inf")))
    with pytest.raises(ConfigError, match=r"--reg\.weight must be a finite number"):
        check_finite(bad)
    with pytest.raises(ConfigError, match=r"--lr must be"):
        check_finite(dataclasses.replace(TrainConfig(), lr=float("nan")))
