"""Config-wide checks shared by every verb."""

import dataclasses

import pytest

from jepa_mpc.config import TrainConfig, check_finite, first_difference
from jepa_mpc.errors import ConfigError


def test_check_finite_names_the_nested_flag():
    check_finite(TrainConfig())
    bad = dataclasses.replace(TrainConfig(), reg=dataclasses.replace(TrainConfig().reg, weight=float("inf")))
    with pytest.raises(ConfigError, match=r"--reg\.weight must be a finite number"):
        check_finite(bad)
    with pytest.raises(ConfigError, match=r"--lr must be"):
        check_finite(dataclasses.replace(TrainConfig(), lr=float("nan")))


def test_first_difference_names_the_first_differing_leaf():
    old = {"a": 1, "layout": {"door": 0.4, "wall": [1, 2]}, "z": 0}
    assert first_difference(old, old) is None
    assert first_difference(old, {**old, "layout": {"door": 0.3, "wall": [1, 2]}, "z": 1}) == ("layout.door", 0.4, 0.3)
    assert first_difference(old, {**old, "b": 2}) == ("b", None, 2)
    assert first_difference({"x": {"y": 1}}, {"x": 5}) == ("x", {"y": 1}, 5)
