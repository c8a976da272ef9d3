"""VavaSMS's answers: the success envelope, and its numbered errors in the shape the document
shows for each route (it shows two: ``{"code": "902", "status": ..., "description": ...}`` on
the send and OTP routes, ``{"code": 901, "message": ..., "description": ..., "data": []}`` on
the balance, for 709 and for 913; each is reproduced where the document uses it).

Documented codes are answered with HTTP 200, the provider reporting outcomes in ``code`` (its
jQuery example reads the body only on a 2xx). A failure the document has no number for (no
credits, a disabled login, the rate limit, bad input other than a number or sender, a service
down) is a 709 ``EXECUTION_ERROR`` with the gateway's message in ``description``, its machine
code in ``error``, and the native HTTP status and headers (429 keeps ``Retry-After``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field

from api.errors import ApiError, error_response
from broker.errors import BrokerError
from broker.status import MessageStatus

OK: Final = "OPERATION_SUCCES"  # sic: the provider's spelling, which clients compare against
SENT_TEXT: Final = "Message envoyé avec succès"
OTP_SENT_TEXT: Final = "OTP envoyé avec succès"
OTP_VERIFIED: Final = "success"


@dataclass(frozen=True, slots=True)
class Problem:
    """One of the document's numbered errors."""

    number: int
    name: str
    description: str


INVALID_CREDENTIALS: Final = Problem(
    901, "INVALID_CREDENTIALS", "Identifiant de connexion incorrect"
)
INVALID_SENDER_ID: Final = Problem(902, "INVALID_SENDER_ID", "Le sender_id n’existe pas")
INVALID_PHONE_NUMBER: Final = Problem(
    903, "INVALID_PHONE_NUMBER", "Le format du numéro de téléphone est invalide"
)
EXECUTION_ERROR: Final = Problem(709, "EXECUTION_ERROR", "Aucun envoi existe pour ce ID")
INVALID_OTP: Final = Problem(913, "INVALID_OTP", "vavasms.INVALID_OTP")


class Route(Enum):
    """The routes, whose documented error shapes differ."""

    BALANCE = "balance"
    SEND = "send"
    STATUS = "status"
    OTP_SEND = "otp_send"
    OTP_VERIFY = "otp_verify"


#: Native error codes the document has a number for, on every route.
_NUMBERED: Final[dict[str, Problem]] = {
    "UNAUTHORIZED": INVALID_CREDENTIALS,
    "INVALID_API_KEY": INVALID_CREDENTIALS,
    "INVALID_SENDER_ID": INVALID_SENDER_ID,
    "INVALID_PHONE_NUMBER": INVALID_PHONE_NUMBER,
    "MISSING_RECIPIENT": INVALID_PHONE_NUMBER,
}
#: ... and on one route only.
_NUMBERED_ON: Final[dict[Route, dict[str, Problem]]] = {
    Route.OTP_VERIFY: {"INVALID_CODE": INVALID_OTP, "MISSING_CODE": INVALID_OTP},
}


class VavaProblem(BrokerError):
    """A documented outcome the dialect itself decides (no such send, a wrong code)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.description, code=problem.name)
        self.problem = problem


T = TypeVar("T")


class Ok(BaseModel, Generic[T]):
    code: int = 0
    message: str = OK
    data: T


class BalanceData(BaseModel):
    amount: int | float
    currency: str


class SentData(BaseModel):
    lot_id: str
    description: str = SENT_TEXT
    message_id: list[str]


class StatusLine(BaseModel):
    lot_id: str
    message_id: str
    status: str
    description: str


class OtpSentData(BaseModel):
    message_id: str
    description: str = OTP_SENT_TEXT


class OtpVerifiedData(BaseModel):
    message_id: str
    status: str = OTP_VERIFIED


class StatusShaped(BaseModel):
    """``{"code": "902", "status": "INVALID_SENDER_ID", "description": ...}``"""

    code: str
    status: str
    description: str


class MessageShaped(BaseModel):
    """``{"code": 913, "message": "INVALID_OTP", "description": ..., "data": []}``; a failure
    without a number of its own adds the gateway's ``error`` code (and ``retry_after``)."""

    code: int | str
    message: str
    description: str
    data: list[Any] = Field(default_factory=list)
    error: str | None = None
    retry_after: int | None = None


#: The state names and texts a status answer gives for each native status ("sent"/"Envoyé" as
#: the document shows; the others in the same manner).
STATUSES: Final[dict[MessageStatus, tuple[str, str]]] = {
    MessageStatus.SCHEDULED: ("scheduled", "Programmé"),
    MessageStatus.QUEUED: ("pending", "En attente"),
    MessageStatus.SENDING: ("pending", "En attente"),
    MessageStatus.SENT: ("sent", "Envoyé"),
    MessageStatus.DELIVERED: ("delivered", "Délivré"),
    MessageStatus.UNDELIVERED: ("undelivered", "Non délivré"),
    MessageStatus.FAILED: ("failed", "Échec"),
    MessageStatus.CANCELED: ("canceled", "Annulé"),
}


def ok(data: BaseModel | list[StatusLine]) -> web.Response:
    body = Ok[Any](data=data).model_dump(mode="json")
    return web.json_response(body)


def _documented(problem: Problem, route: Route | None) -> BaseModel:
    """The body the document shows for ``problem`` on ``route``."""
    if problem.number == EXECUTION_ERROR.number:
        return MessageShaped(
            code=str(problem.number), message=problem.name, description=problem.description
        )
    if problem.number == INVALID_OTP.number or route is Route.BALANCE:
        return MessageShaped(
            code=problem.number, message=problem.name, description=problem.description
        )
    return StatusShaped(
        code=str(problem.number), status=problem.name, description=problem.description
    )


def _dump(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(mode="json", exclude_none=True)


def problem_response(problem: Problem, route: Route | None) -> web.Response:
    return web.json_response(_dump(_documented(problem, route)))


#: Headers of the native answer that belong to its body, not to the failure.
_OWN_HEADERS: Final = frozenset({"content-type", "content-length"})


def failure(exc: BrokerError, route: Route | None) -> web.Response:
    """Any failure of the native services, as the document would answer it on ``route``."""
    if isinstance(exc, VavaProblem):
        return problem_response(exc.problem, route)
    numbered = _NUMBERED_ON.get(route, {}) if route is not None else {}
    problem = numbered.get(exc.code) or _NUMBERED.get(exc.code)
    if problem is not None:
        return problem_response(problem, route)
    native = error_response(exc)
    extra = (exc.extra or {}) if isinstance(exc, ApiError) else {}
    retry_after = extra.get("retry_after")
    body = MessageShaped(
        code=str(EXECUTION_ERROR.number),
        message=EXECUTION_ERROR.name,
        description=exc.message,
        error=exc.code,
        retry_after=retry_after if isinstance(retry_after, int) else None,
    )
    headers = {k: v for k, v in native.headers.items() if k.lower() not in _OWN_HEADERS}
    return web.json_response(_dump(body), status=native.status, headers=headers)


def render_error(exc: BrokerError) -> web.Response:
    """The sub-application's answer to a failure outside the routes (no such path, method)."""
    return failure(exc, None)
