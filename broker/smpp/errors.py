"""Errors of the SMPP layer, all under :class:`broker.errors.SmppError`.

SmppError
├── SmppCodecError      a frame or a value that SMPP 3.4 cannot carry
├── SmppStateError      an operation the session state does not allow
├── SmppBindError       the SMSC refused the bind (``command_status`` kept)
├── SmppTimeout         no response within the response timeout
├── SmppConnectionLost  the connection closed with the request in flight
└── SubmitUnavailable   no bound session, or the bind was lost mid-submit: requeue
"""

from __future__ import annotations

from broker.errors import SmppError


class SmppCodecError(SmppError):
    """A malformed frame or an unencodable value.

    When the header could be read, ``command_id`` and ``sequence_number`` say which PDU it
    was, and ``status`` is the command_status a peer should be answered with.
    """

    code = "SMPP_CODEC_ERROR"

    def __init__(
        self,
        message: str,
        *,
        status: int = 0x01,
        command_id: int | None = None,
        sequence_number: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.command_id = command_id
        self.sequence_number = sequence_number


class SmppStateError(SmppError):
    code = "SMPP_STATE_ERROR"


class SmppBindError(SmppError):
    code = "SMPP_BIND_FAILED"

    def __init__(self, message: str, *, command_status: int) -> None:
        super().__init__(message)
        self.command_status = command_status


class SmppTimeout(SmppError):
    code = "SMPP_TIMEOUT"


class SmppConnectionLost(SmppError):
    code = "SMPP_CONNECTION_LOST"


class SubmitUnavailable(SmppError):
    code = "SMPP_UNAVAILABLE"
