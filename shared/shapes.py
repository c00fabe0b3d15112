"""Type checks for decoded JSON that stay cheap on the admission path.

``isinstance(value, Mapping)`` goes through the ABC machinery, and a review
asks it a few dozen times; JSON decodes to plain dicts, which a type check
settles at once. Other mappings (a test's, a cache's read-only view) still pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard


def is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    return type(value) is dict or isinstance(value, Mapping)
