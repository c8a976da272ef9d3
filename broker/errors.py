"""The gateway's one error tree.

    BrokerError
    ├── InputError            bad input from a customer or an operator; changes nothing (400)
    │   └── (each carries a stable machine ``code`` and the offending ``field``)
    ├── Forbidden             allowed to nobody in the caller's position, e.g. a key making a
    │                         broader key (403; may name the ``field``)
    ├── NotFound              a resource that does not exist for this account (404)
    ├── Conflict              the request contradicts the current state (409)
    ├── InsufficientCredits   the balance cannot cover the cost (402)
    ├── DependencyUnavailable PostgreSQL or RabbitMQ unreachable (503)
    └── SmppError             SMPP protocol and session failures (see broker.smpp)

Lower layers translate their own exceptions into these at the boundary (``raise X from exc``)
so that the API maps an error to a status and a code in one place.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every error the gateway raises on purpose."""

    code: str = "INTERNAL_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InputError(BrokerError):
    """Invalid input: answered 400 (CLI: exit code 2) and nothing is changed."""

    code = "INVALID_INPUT"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class Forbidden(BrokerError):
    code = "FORBIDDEN"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class NotFound(BrokerError):
    code = "NOT_FOUND"


class Conflict(BrokerError):
    code = "CONFLICT"


class InsufficientCredits(BrokerError):
    code = "INSUFFICIENT_CREDITS"


class DependencyUnavailable(BrokerError):
    code = "SERVICE_UNAVAILABLE"


class SmppError(BrokerError):
    code = "SMPP_ERROR"
