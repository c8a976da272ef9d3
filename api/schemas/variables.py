"""Template variables as a request gives them: names to values (text, numbers or booleans,
kept as the text they render as)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from api.schemas.common import storable
from broker.templates import NAME

MAX_VARIABLES = 100
MAX_VALUE = 1000
_NAME = re.compile(NAME)


def _variables(value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PydanticCustomError("INVALID_VARIABLES", "`variables` must be an object")
    if len(value) > MAX_VARIABLES:
        raise PydanticCustomError(
            "INVALID_VARIABLES", f"`variables` has more than {MAX_VARIABLES} entries"
        )
    out: dict[str, str] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            raise PydanticCustomError(
                "INVALID_VARIABLES",
                "variable names are letters, digits, _ . - (starting with a letter or _), "
                "at most 64 characters",
            )
        if isinstance(raw, bool):
            text = "true" if raw else "false"
        elif isinstance(raw, str | int | float):
            text = str(raw)
        else:
            raise PydanticCustomError(
                "INVALID_VARIABLES", f"variable {name!r} must be text, a number or a boolean"
            )
        if len(text) > MAX_VALUE:
            raise PydanticCustomError(
                "INVALID_VARIABLES", f"variable {name!r} is longer than {MAX_VALUE} characters"
            )
        out[name] = storable(text)
    return out


#: ``variables`` of a send or a preview.
Variables = Annotated[
    dict[str, str],
    BeforeValidator(_variables),
    Field(
        description="Values for the template's `{{placeholders}}`; a contact's own values "
        "(name, first_name, last_name, phone, email, fields) take precedence."
    ),
]
