"""What a servicer is: a thin door in front of one service. It parses the request, calls the
service and builds the reply (``convert`` does the converting); ``Door`` holds that service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

_S = TypeVar("_S")


@dataclass(eq=False)
class Door(Generic[_S]):
    service: _S
