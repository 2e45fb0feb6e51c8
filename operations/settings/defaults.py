"""The defaults of every data key: read from ``group_data/all.py``, their only definition.

pyinfra hands deploys ``group_data/all.py``'s values as host data when it runs from the
repository root; this module gives the same values to code that reads data elsewhere (unit
tests, a user's own deploy file run from another folder), so no default is written twice.
"""

from __future__ import annotations

import ast
import copy
from functools import cache
from pathlib import Path
from typing import Any

ALL_DEFAULTS = Path(__file__).resolve().parents[2] / "group_data" / "all.py"


@cache
def _defaults() -> dict[str, Any]:
    """``{key: value}`` of the names ``group_data/all.py`` assigns at module level (literals)."""
    values: dict[str, Any] = {}
    for node in ast.parse(ALL_DEFAULTS.read_text()).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    values[target.id] = ast.literal_eval(node.value)
    return values


def known_keys() -> frozenset[str]:
    """Every data key pyinfra-web2py reads."""
    return frozenset(_defaults())


def default(key: str) -> Any:
    """The default of ``key`` (a copy: callers may change lists and dicts)."""
    return copy.deepcopy(_defaults()[key])


def value(data: Any, key: str) -> Any:
    """``key`` from host data (``host.data`` or a mapping), else its default."""
    return data.get(key, default(key))
