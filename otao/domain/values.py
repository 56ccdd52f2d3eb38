"""How the domain declares its records: immutable values with slots, said once.

``@frozen`` is ``@dataclass(frozen=True, slots=True)``: frozen so a record read by one poll
cannot change under another, slotted because every poll and push builds many of them (smaller,
faster attribute reads). ``dataclass_transform`` tells type checkers it makes dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: type[_T]) -> type[_T]:
    """A frozen, slotted dataclass of ``cls``."""
    return dataclass(frozen=True, slots=True)(cls)
