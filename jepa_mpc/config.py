"""Frozen dataclass configs for every stage, and presets per environment.

Each stage owns one section below. Configs are saved next to every artifact
(as JSON via `to_dict`) and can be overridden field by field from the CLI (tyro).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


# ---------------------------------------------------------------- collection (data/)
# (owned by the data stage)

# ---------------------------------------------------------------- model + training
# (owned by the model/train stage)

# ---------------------------------------------------------------- planning + eval
# (owned by the planning stage)
