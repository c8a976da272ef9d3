"""One SMPP bind over TCP: the asyncio transport that feeds a :class:`Session`.

It owns what the pure session cannot: the socket, timers (enquire_link, response timeouts),
flow control in both directions, the window semaphore and the deliver_sm callbacks whose
completion decides the deliver_sm_resp.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import structlog

from broker.errors import BrokerError
from broker.smpp.constants import CommandId, Status
from broker.smpp.errors import (
    SmppBindError,
    SmppCodecError,
    SmppConnectionLost,
    SmppStateError,
    SmppTimeout,
)
from broker.smpp.pdu import BodyValue, FrameReader, Pdu, decode_pdu, encode_pdu
from broker.smpp.session import BindMode, Deliver, Ignored, Reply, Response, Session

__all__ = ["ClientConfig", "DeliverCallback", "SmppClient", "connect"]

log = structlog.get_logger(__name__)

DeliverCallback = Callable[[Pdu], Awaitable[None]]

_WRITE_HIGH_WATER: Final = 256 * 1024
_MAX_PENDING_DELIVERS: Final = 256


@dataclass(frozen=True, slots=True)
class ClientConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    mode: BindMode = "trx"
    window: int = 10
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0
    connect_timeout: float = 10.0
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


class _Window:
    """The in-flight limit of one bind: a FIFO semaphore whose waiters may time out.

    asyncio.Semaphore scans all its waiters on every release and needs wait_for (a task per
    call) for a timeout; at window 100 and thousands of submits per second both show up.
    """

    __slots__ = ("_loop", "_waiters", "size", "used")

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self.size = size
        self.used = 0
        self._loop = loop
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, timeout: float | None) -> None:
        if self.used < self.size and not self._waiters:
            self.used += 1
            return
        future: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(future)
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, future)
        try:
            await future  # on success release() handed its slot over: ``used`` is unchanged
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release()  # the slot arrived together with the cancellation
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.used -= 1


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(SmppTimeout("no window room within the queue timeout"))


class _Waiter:
    __slots__ = ("command_id", "deadline", "future")

    def __init__(self, command_id: int, future: asyncio.Future[Pdu], deadline: float) -> None:
        self.command_id = command_id
        self.future = future
        self.deadline = deadline


async def _ignore_delivers(pdu: Pdu) -> None:
    """Default callback for transmitter-only binds, which never get a deliver_sm."""


async def connect(
    config: ClientConfig, on_deliver: DeliverCallback = _ignore_delivers, *, label: str = ""
) -> SmppClient:
    """Open the TCP connection and bind; raises SmppBindError, SmppTimeout or OSError."""
    loop = asyncio.get_running_loop()
    try:
        _, client = await asyncio.wait_for(
            loop.create_connection(
                lambda: SmppClient(config, on_deliver, label=label), config.host, config.port
            ),
            config.connect_timeout,
        )
    except TimeoutError as exc:
        raise SmppTimeout(f"connect to {config.host}:{config.port} timed out") from exc
    try:
        await client.bind()
    except BaseException:
        client.abort()
        raise
    return client


class SmppClient(asyncio.Protocol):
    """One TCP connection and one bind, as an ESME."""

    def __init__(
        self, config: ClientConfig, on_deliver: DeliverCallback, *, label: str = ""
    ) -> None:
        self.config = config
        self._on_deliver = on_deliver
        self._log = log.bind(smsc=f"{config.host}:{config.port}", bind=label or config.mode)
        self._loop = asyncio.get_running_loop()
        self._session = Session(window=config.window)
        self._reader = FrameReader()
        self._transport: asyncio.Transport | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._window = _Window(config.window, self._loop)
        self._load = 0
        self._outbox: list[bytes] = []
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = asyncio.Event()
        self._closing = False
        self._delivers: set[asyncio.Task[None]] = set()
        self._reading_paused = False
        self._last_activity = self._loop.time()
        self._keepalive: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_interval = min(1.0, max(0.005, config.response_timeout / 4))
        #: A request went unanswered: nothing more is submitted here until a probe
        #: (enquire_link) is answered; an unanswered probe drops the bind.
        self._suspect = False
        #: Called when the bind stops or starts taking submits (the connector re-picks).
        self.on_change: Callable[[], None] = _nothing

    # --- public --------------------------------------------------------------------------

    @property
    def is_bound(self) -> bool:
        return self._session.is_bound and not self._closing

    @property
    def can_transmit(self) -> bool:
        return self._session.can_transmit and not self._closing and not self._suspect

    @property
    def suspect(self) -> bool:
        return self._suspect

    @property
    def in_flight(self) -> int:
        return self._session.in_flight

    @property
    def load(self) -> int:
        """Requests holding or awaiting a window slot: what spreading over binds compares."""
        return self._load

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def bind(self) -> None:
        cfg = self.config
        pdu = self._session.bind(
            cfg.mode,
            system_id=cfg.system_id,
            password=cfg.password,
            system_type=cfg.system_type,
            addr_ton=cfg.addr_ton,
            addr_npi=cfg.addr_npi,
            address_range=cfg.address_range,
        )
        response = await self._send(pdu, cfg.response_timeout)
        if response.command_status != Status.ESME_ROK:
            raise SmppBindError(
                f"bind refused with command_status 0x{response.command_status:08x}",
                command_status=response.command_status,
            )
        self._log.info("smpp.bound", system_id=cfg.system_id, mode=cfg.mode)
        self._schedule_keepalive(cfg.enquire_link_interval)

    async def submit_sm(
        self,
        body: dict[str, BodyValue],
        tlvs: dict[int, bytes] | None = None,
        *,
        queue_timeout: float | None = None,
    ) -> Pdu:
        """submit_sm_resp (or generic_nack); waits for window room and write buffer room."""
        return await self.request(CommandId.SUBMIT_SM, body, tlvs, queue_timeout=queue_timeout)

    async def request(
        self,
        command_id: int,
        body: dict[str, BodyValue] | None = None,
        tlvs: dict[int, bytes] | None = None,
        *,
        timeout: float | None = None,
        queue_timeout: float | None = None,
    ) -> Pdu:
        """Send one request and return its response PDU, whatever its command_status.

        Waits for window room (at most ``queue_timeout``) and for write-buffer room first;
        ``timeout`` bounds the wait for the response once the PDU is written.
        """
        self._load += 1
        try:
            await self._window.acquire(queue_timeout)
            try:
                if not self._writable.is_set():
                    await self._writable.wait()
                if self._closing:
                    raise SmppStateError("bind is closing")
                if self._suspect and command_id != CommandId.ENQUIRE_LINK:
                    raise SmppStateError("bind is suspect: a request went unanswered")
                pdu = self._session.request(command_id, body, tlvs)
                future = self._send(pdu, timeout or self.config.response_timeout)
                try:
                    return await future
                except asyncio.CancelledError:
                    self._on_abandoned(pdu.sequence_number)
                    raise
            finally:
                self._window.release()
        finally:
            self._load -= 1

    async def close(self, timeout: float | None = None) -> None:
        """Finish running deliver callbacks and submits, unbind, and close the socket."""
        if self._closing or self._transport is None:
            await self._closed.wait()
            return
        self._closing = True
        grace = timeout if timeout is not None else self.config.response_timeout
        pending: set[asyncio.Future[Any]] = {w.future for w in self._waiters.values()}
        pending.update(self._delivers)
        if pending:
            await asyncio.wait(pending, timeout=grace)
        if self._session.is_bound:
            with contextlib.suppress(SmppTimeout, SmppConnectionLost):
                await self._send(self._session.unbind(), grace)
        self._flush()
        self._transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), grace)
        if not self._closed.is_set():
            self.abort()

    def abort(self) -> None:
        """Drop the connection now (no unbind)."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    # --- sending -------------------------------------------------------------------------

    def _send(self, pdu: Pdu, timeout: float) -> asyncio.Future[Pdu]:
        seq = pdu.sequence_number
        try:
            data = encode_pdu(pdu)
        except SmppCodecError:
            self._session.forget(seq)
            raise
        future: asyncio.Future[Pdu] = self._loop.create_future()
        self._waiters[seq] = _Waiter(pdu.command_id, future, self._loop.time() + timeout)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(self._sweep_interval, self._sweep)
        self._write(data)
        return future

    def _write(self, data: bytes) -> None:
        if not self._outbox:
            self._loop.call_soon(self._flush)
        self._outbox.append(data)

    def _flush(self) -> None:
        """Writes everything queued in this loop iteration with one transport write."""
        if not self._outbox:
            return
        data = b"".join(self._outbox) if len(self._outbox) > 1 else self._outbox[0]
        self._outbox.clear()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _on_timeout(self, seq: int) -> None:
        waiter = self._waiters.pop(seq, None)
        if waiter is None:
            return
        self._session.forget(seq)
        command = _command_name(waiter.command_id)
        if not waiter.future.done():
            waiter.future.set_exception(SmppTimeout(f"no response to {command} seq {seq}"))
        if waiter.command_id == CommandId.ENQUIRE_LINK:
            self._log.warning("smpp.enquire_link_timeout", seq=seq)
            self.abort()
        elif not self._suspect and not self._closing:
            self._become_suspect(command)

    def _become_suspect(self, command: str) -> None:
        """A silent carrier must not get window after window of submits it may have taken:
        stop submitting here and probe; the probe's answer clears the doubt, its silence
        drops the bind (the connector reconnects)."""
        self._suspect = True
        self._log.warning("smpp.bind_suspect", unanswered=command)
        self.on_change()
        try:
            request = self._session.request(CommandId.ENQUIRE_LINK)
        except SmppStateError:
            return  # not bound (any more): nothing to probe, nothing will be submitted
        probe = self._send(request, self.config.response_timeout)
        probe.add_done_callback(self._probed)

    def _probed(self, probe: asyncio.Future[Pdu]) -> None:
        if probe.cancelled() or probe.exception() is not None:
            return  # the timeout aborted the bind already (see _on_timeout)
        if self._suspect and not self._closing:
            self._suspect = False
            self._log.info("smpp.bind_answers_again")
            self.on_change()

    def _on_abandoned(self, seq: int) -> None:
        """The caller gave up (cancelled): the request no longer holds the window."""
        if self._waiters.pop(seq, None) is not None:
            self._session.forget(seq)

    def _sweep(self) -> None:
        """Expires requests past their deadline.

        One periodic sweep instead of a timer per request: at thousands of submits per second
        the timer heap costs more than scanning a window's worth of waiters a few times per
        response timeout. A timeout fires up to one sweep interval late.
        """
        self._sweeper = None
        now = self._loop.time()
        expired = [seq for seq, waiter in self._waiters.items() if waiter.deadline <= now]
        for seq in expired:
            self._on_timeout(seq)
        if self._waiters and not self._closed.is_set():
            self._sweeper = self._loop.call_later(self._sweep_interval, self._sweep)

    # --- keepalive -----------------------------------------------------------------------

    def _schedule_keepalive(self, delay: float) -> None:
        if not self._closed.is_set():
            self._keepalive = self._loop.call_later(delay, self._keepalive_due)

    def _keepalive_due(self) -> None:
        """Sends enquire_link after a quiet interval; activity only moves the deadline."""
        interval = self.config.enquire_link_interval
        idle = self._loop.time() - self._last_activity
        if idle < interval:
            self._schedule_keepalive(interval - idle)
            return
        if self._session.is_bound and not self._closing:
            pdu = self._session.request(CommandId.ENQUIRE_LINK)
            future = self._send(pdu, self.config.response_timeout)
            future.add_done_callback(_consume_exception)
        self._schedule_keepalive(interval)

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not a subclass of asyncio.Transport, only alike.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._outbox.clear()
        lost = self._session.close()
        for seq in lost:
            waiter = self._waiters.pop(seq, None)
            if waiter is not None and not waiter.future.done():
                waiter.future.set_exception(SmppConnectionLost("connection lost"))
        self._waiters.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._writable.set()  # wake writers so they see the closed session
        self._closed.set()
        self._log.info("smpp.connection_closed", error=str(exc) if exc else None)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        try:
            frames = self._reader.feed(data)
        except SmppCodecError as exc:
            self._log.warning("smpp.framing_error", error=str(exc))
            self.abort()
            return
        for frame in frames:
            self._receive_frame(frame)

    def _receive_frame(self, frame: bytes) -> None:
        try:
            pdu = decode_pdu(frame)
        except SmppCodecError as exc:
            self._log.warning("smpp.malformed_pdu", error=str(exc), seq=exc.sequence_number)
            nack = self._session.reply_to_malformed(exc)
            if nack is not None:
                self._write(encode_pdu(nack))
            ended = self._session.fail_malformed_response(exc)
            if ended is not None:
                self._resolve(ended.pdu)
            return
        event = self._session.receive(pdu)
        if type(event) is Response:
            self._resolve(event.pdu)
        elif type(event) is Deliver:
            self._start_deliver(event.pdu)
        elif type(event) is Reply:
            self._reply(event)
        elif type(event) is Ignored:
            self._log.debug(
                "smpp.pdu_ignored",
                reason=event.reason,
                command_id=pdu.command_id,
                command_status=pdu.command_status,
                seq=pdu.sequence_number,
            )

    def _resolve(self, pdu: Pdu) -> None:
        waiter = self._waiters.pop(pdu.sequence_number, None)
        if waiter is not None and not waiter.future.done():
            waiter.future.set_result(pdu)

    def _reply(self, reply: Reply) -> None:
        self._write(encode_pdu(reply.pdu))
        if reply.close and self._transport is not None:
            self._log.info("smpp.unbound_by_smsc")
            self._closing = True
            self._flush()
            self._transport.close()

    # --- deliver_sm ----------------------------------------------------------------------

    def _start_deliver(self, pdu: Pdu) -> None:
        task = self._loop.create_task(self._deliver(pdu))
        self._delivers.add(task)
        task.add_done_callback(self._deliver_done)
        if len(self._delivers) >= _MAX_PENDING_DELIVERS and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _deliver_done(self, task: asyncio.Task[None]) -> None:
        self._delivers.discard(task)
        if self._reading_paused and len(self._delivers) < _MAX_PENDING_DELIVERS // 2:
            self._reading_paused = False
            if self._transport is not None and not self._transport.is_closing():
                self._transport.resume_reading()

    async def _deliver(self, pdu: Pdu) -> None:
        """Answer ESME_ROK only once the callback returned; a BrokerError asks for redelivery."""
        status = Status.ESME_RX_T_APPN
        try:
            await self._on_deliver(pdu)
            status = Status.ESME_ROK
        except BrokerError as exc:
            self._log.warning("smpp.deliver_failed", error=exc.message, code=exc.code)
        finally:
            # Also on a bug in the callback: the SMSC gets a temporary error and redelivers.
            if self._transport is not None and not self._transport.is_closing():
                self._write(encode_pdu(self._session.answer(pdu, status)))


def _nothing() -> None:
    return None


def _consume_exception(future: asyncio.Future[Pdu]) -> None:
    if not future.cancelled():
        future.exception()


def _command_name(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"0x{command_id:08x}"
