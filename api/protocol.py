"""The HTTP connection handler, hardened for clients that misbehave.

aiohttp's own handler answers a malformed request with the parser's message, which quotes the
raw bytes (an ``api_key`` in a long request line, a bearer key in a long header), and logs the
same bytes; and it waits up to its keep-alive timeout (an hour) for a request that never
completes. This handler answers malformed requests in the API's error shape without the bytes,
logs no request bytes, and bounds the time a client may take to send a request's head and body.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from aiohttp import http_exceptions, web
from aiohttp.streams import StreamReader

from api.errors import ApiError, error_body

log = structlog.get_logger(__name__)

#: Longest request line (method, target, version). It differs from the header limit on
#: purpose: aiohttp reports both as ``LineTooLong`` and only the limit says which one it was.
MAX_REQUEST_LINE = 8192
#: Longest header field (name and value), aiohttp's default.
MAX_HEADER_FIELD = 8190


def parse_error(exc: BaseException | None, line_limit: int) -> tuple[int, str, str]:
    """Status, code and message for a request the HTTP parser refused; never the bytes."""
    if isinstance(exc, http_exceptions.LineTooLong):
        if exc.args[1:2] == (line_limit,):
            return 414, "URI_TOO_LONG", f"the request line is longer than {line_limit} bytes"
        limit = exc.args[1] if len(exc.args) > 1 else MAX_HEADER_FIELD
        return 431, "HEADER_TOO_LARGE", f"a header field is longer than {limit} bytes"
    if isinstance(exc, http_exceptions.BadHttpMessage) and exc.message.startswith("Too many"):
        return 431, "HEADER_TOO_LARGE", "the request has too many header fields"
    if isinstance(exc, http_exceptions.BadHttpMethod):
        return 400, "BAD_REQUEST", "the request line is not HTTP/1.x"
    if isinstance(exc, http_exceptions.BadStatusLine):
        return 400, "BAD_REQUEST", "the request line is malformed"
    if isinstance(exc, http_exceptions.InvalidURLError):
        return 400, "BAD_REQUEST", "the request target is not a valid URL"
    return 400, "BAD_REQUEST", "the request is not valid HTTP/1.1"


def raw_error(status: int, reason: str, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection, for use outside a handler."""
    body = json.dumps(error_body(code, message)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GatewayRequestHandler(web.RequestHandler):
    """aiohttp's handler with parse errors in the error shape and slow clients timed out.

    The head deadline starts at the first byte of a request and is not extended by more
    bytes (a client that trickles one byte a second is as stalled as one that sends nothing);
    the body deadline starts when the head is complete. An idle keep-alive connection is not
    a slow client: it stays aiohttp's keep-alive timeout's business. A client that pipelines
    a partial second request behind a complete one is bounded by that timeout too: aiohttp's
    C parser does not tell whether bytes are left over after a complete request.
    """

    __slots__ = ("_head_timeout", "_body_timeout", "_head_timer", "_body_timer", "_body")

    def __init__(
        self,
        manager: web.Server,
        *,
        head_timeout: float,
        body_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._body_timeout = body_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None

    def data_received(self, data: bytes) -> None:
        body = self._body
        in_body = body is not None and not body.is_eof()
        before = self._request_count
        super().data_received(data)
        if not data or self._close or self._force_close:
            return
        if self._request_count != before:
            # One or more request heads completed (or one was refused) in this chunk.
            self._cancel_head()
            payload = self._messages[-1][1] if self._messages else None
            if isinstance(payload, StreamReader) and not payload.is_eof():
                self._arm_body(payload)
            else:
                self._cancel_body()
        elif in_body:
            if body is not None and body.is_eof():
                self._cancel_body()
        elif self._head_timer is None:
            self._head_timer = self._loop.call_later(self._head_timeout, self._head_expired)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head()
        self._cancel_body()
        super().connection_lost(exc)

    def _cancel_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._body = None

    def _arm_body(self, payload: StreamReader) -> None:
        self._cancel_body()
        self._body = payload
        self._body_timer = self._loop.call_later(self._body_timeout, self._body_expired)

    def _busy(self) -> bool:
        return self._request_in_progress or bool(self._messages)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport is None or self._force_close:
            return
        if self._busy():
            # A pipelined head waits behind a request the server is still answering.
            self._head_timer = self._loop.call_later(self._head_timeout, self._head_expired)
            return
        log.info("request head timed out", remote=_remote(self), seconds=self._head_timeout)
        message = f"the request line and headers did not arrive within {self._head_timeout:g} s"
        self.transport.write(raw_error(408, "Request Timeout", "REQUEST_TIMEOUT", message))
        self.force_close()

    def _body_expired(self) -> None:
        self._body_timer = None
        payload, self._body = self._body, None
        if payload is None or payload.is_eof() or self.transport is None:
            return
        log.info("request body timed out", remote=_remote(self), seconds=self._body_timeout)
        if self._current_request is None:
            # Nobody reads this body (the answer went out already): just hang up.
            self.force_close()
            return
        message = f"the request body did not arrive within {self._body_timeout:g} s"
        # The reader gets the error, the handler answers it in the error shape; the EOF
        # spares aiohttp's lingering read after the answer, and close() ends the connection
        # (the rest of the body would otherwise be parsed as a next request).
        payload.set_exception(ApiError(408, "REQUEST_TIMEOUT", message))
        payload.feed_eof()
        self.close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The error shape, and a log line naming the problem but not the request's bytes."""
        if status == 500:
            # A handler failed: the traceback is the operator's, the customer gets none.
            code, text = "SERVER_ERROR", "the server could not answer this request"
            log.error("request failed", method=request.method, path=request.path, exc_info=exc)
        else:
            status, code, text = parse_error(exc, self.max_line_size)
            log.info(
                "http request refused",
                status=status,
                code=code,
                error=type(exc).__name__ if exc is not None else None,
                remote=request.remote,
            )
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was sent already; cannot send the error")
        resp = web.json_response(error_body(code, text), status=status)
        resp.force_close()
        return resp


def _remote(handler: web.RequestHandler) -> str | None:
    peer = handler.transport.get_extra_info("peername") if handler.transport else None
    return str(peer[0]) if isinstance(peer, tuple) else None


class GatewayServer(web.Server):
    """aiohttp's low-level server, making GatewayRequestHandler connections."""

    def __init__(self, *args: Any, head_timeout: float, body_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timeouts = {"head_timeout": head_timeout, "body_timeout": body_timeout}

    def __call__(self) -> GatewayRequestHandler:
        return GatewayRequestHandler(self, loop=self._loop, **self._timeouts, **self._kwargs)
