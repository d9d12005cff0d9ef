"""Building values that are valid already, without validating them again.

A command becomes its event, a stored row becomes its view, a case state its successor: on
those hot paths (every recorded event, every exported row) the constructors' own checks were a
quarter of the time. Each function takes every field; nothing is checked.
"""

from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
D = TypeVar("D")


def unchecked(cls: type[M], fields: dict[str, Any]) -> M:
    """What pydantic's model_construct does, without its per-field loop. The models are frozen,
    so all of a class's instances can share one set of the fields they were given."""
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", fields)
    object.__setattr__(model, "__pydantic_fields_set__", _all_fields(cls))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


@cache
def _all_fields(cls: type[BaseModel]) -> set[str]:
    return set(cls.model_fields)


def assembled(cls: type[D], fields: dict[str, Any]) -> D:
    """A frozen dataclass (without slots) from all its fields, bypassing its __init__."""
    value = object.__new__(cls)
    object.__setattr__(value, "__dict__", fields)
    return value
