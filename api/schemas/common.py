"""Types every request and response model shares: storable text, numbers, the error shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from broker.errors import InputError
from broker.text import has_unstorable
from broker.webhooks.destinations import refused_destination
from broker.webhooks.endpoints import parse_url

T = TypeVar("T")
R = TypeVar("R")


def storable(value: str) -> str:
    """Refuse what no worker could store: a 202 must never be followed by a lost request."""
    if has_unstorable(value):
        raise PydanticCustomError(
            "INVALID_CHARACTER",
            "contains a NUL character or a lone surrogate, which cannot be stored or sent",
        )
    return value


def blank_as_none(value: Any) -> Any:
    return None if value == "" else value


#: Any text a request carries: proven storable before the request is accepted.
Text = Annotated[str, AfterValidator(storable)]
#: An optional text where an empty string means "not given" (as form posts send it).
OptionalText = Annotated[Text | None, BeforeValidator(blank_as_none)]
#: Credits: an integer when whole, else a decimal number.
Number = int | float


def checked(check: Callable[[T], R]) -> Callable[[T], R]:
    """A broker check (raising InputError) as a pydantic validator keeping its code."""

    def run(value: T) -> R:
        try:
            return check(value)
        except InputError as exc:
            details = getattr(exc, "details", None)
            raise PydanticCustomError(exc.code, exc.message, {"details": details}) from None

    return run


def field_error(model: str, field: str, code: str, message: str) -> ValidationError:
    """A check across fields (a model validator) reported against the field it is about."""
    problem = InitErrorDetails(type=PydanticCustomError(code, message), loc=(field,), input=None)
    return ValidationError.from_exception_data(model, [problem])


def destination_url(value: str, info: ValidationInfo) -> str:
    """A URL the gateway will post to: well formed, and public unless the operator allows
    private addresses (validation context ``allow_private``)."""
    url = checked(parse_url)(value)
    if not (info.context or {}).get("allow_private", False):
        refusal = refused_destination(url)
        if refusal is not None:
            raise PydanticCustomError("INVALID_URL", refusal)
    return url


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine code, e.g. INVALID_PHONE_NUMBER.")
    message: str = Field(description="What went wrong, for a human.")
    field: str | None = Field(None, description="The request field at fault, if one is.")
    details: list[dict[str, Any]] | None = Field(
        None, description="Every problem found, e.g. each invalid number with its index."
    )
    retry_after: int | None = Field(None, description="Seconds to wait (429 only).")


class ErrorResponse(BaseModel):
    """Every answer that is not a success has this shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "INVALID_PHONE_NUMBER",
                        "message": "1 invalid phone number(s) in `to`",
                        "field": "to",
                        "details": [{"index": 1, "value": "12", "reason": "not a valid number"}],
                    }
                }
            ]
        }
    )

    error: ErrorInfo
