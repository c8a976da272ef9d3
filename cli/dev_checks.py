"""`smsbroker dev`'s checks before it changes anything: its ports free, its services reachable.

A newcomer's first run should fail in one line that says what to do, not in a traceback after
a database was created and migrated.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aio_pika

from broker.db_admin import admin_connection
from broker.errors import Conflict, DependencyUnavailable, InputError
from broker.queues import AMQP_ERRORS


class PortUnavailable(Conflict):
    """A port `smsbroker dev` must listen on is taken (or not ours to take)."""

    code = "PORT_UNAVAILABLE"


@dataclass(frozen=True)
class Listener:
    """A port the command will listen on, and the option that chooses it."""

    what: str
    host: str
    port: int
    option: str
    #: Show how to pass the option through `make dev` (the dev command's listeners).
    via_make: bool = True


def port_error(listener: Listener, exc: OSError) -> PortUnavailable:
    at = f"{listener.host}:{listener.port}"
    if exc.errno == errno.EADDRINUSE:
        reason = "is already in use"
    elif exc.errno == errno.EACCES:
        reason = "needs privileges to listen on"
    else:
        reason = f"cannot be listened on ({exc.strerror or exc})"
    hint = f"; choose another with {listener.option}"
    if listener.via_make:
        other = listener.port + 1 if listener.port < 65535 else listener.port - 1
        hint += f' (e.g. make dev ARGS="{listener.option} {other}")'
    return PortUnavailable(f"{listener.what} port {at} {reason}{hint}")


def check_ports(listeners: Sequence[Listener]) -> None:
    """Bind each port (all at once, so two listeners on one port are caught) and let go."""
    chosen = [(item.host, item.port) for item in listeners if item.port]
    if len(set(chosen)) != len(chosen):
        names = " and ".join(item.option for item in listeners)
        raise InputError(f"{names} must be different ports")
    held: list[socket.socket] = []
    try:
        for listener in listeners:
            try:
                infos = socket.getaddrinfo(
                    listener.host,
                    listener.port,
                    type=socket.SOCK_STREAM,
                    flags=socket.AI_PASSIVE,
                )
            except socket.gaierror as exc:
                raise InputError(
                    f"{listener.what} host {listener.host!r} does not resolve: {exc.strerror}"
                ) from exc
            for family, kind, proto, _, address in infos:
                sock = socket.socket(family, kind, proto)
                held.append(sock)
                # As asyncio's servers do, so a port in TIME_WAIT counts as free.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(address)
                except OSError as exc:
                    raise port_error(listener, exc) from exc
    finally:
        for sock in held:
            sock.close()


async def check_postgres(dsn: str) -> None:
    try:
        conn = await admin_connection(dsn)
    except DependencyUnavailable as exc:
        raise DependencyUnavailable(
            f"{exc.message} (is PostgreSQL running? DATABASE_URL chooses the server)",
            code="DATABASE_UNAVAILABLE",
        ) from exc
    await conn.close()


def _amqp_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    except ValueError as exc:
        raise InputError(f"AMQP_URL has an invalid port: {exc}", field="AMQP_URL") from exc
    return parts.hostname or "localhost", port


async def check_rabbitmq(url: str) -> None:
    host, port = _amqp_address(url)
    try:
        # A plain TCP connect first: aiormq logs a refused connection at ERROR level on top
        # of raising it, which would make this one clear line two.
        async with asyncio.timeout(10):
            _, writer = await asyncio.open_connection(host, port)
        writer.close()
    except OSError as exc:  # TimeoutError included
        reason = exc.strerror or "no answer within 10 s"
        raise DependencyUnavailable(
            f"RabbitMQ unreachable at {host}:{port}: {reason} "
            "(is RabbitMQ running? AMQP_URL chooses the server)",
            code="BROKER_UNAVAILABLE",
        ) from exc
    try:
        connection = await aio_pika.connect(url, timeout=10)
    except AMQP_ERRORS as exc:
        raise DependencyUnavailable(
            f"RabbitMQ at {host}:{port} refused the connection: {exc} (check AMQP_URL)",
            code="BROKER_UNAVAILABLE",
        ) from exc
    except ValueError as exc:  # yarl and aio-pika refuse a malformed URL with ValueError
        raise InputError(f"AMQP_URL is not a valid AMQP URL: {exc}", field="AMQP_URL") from exc
    await connection.close()


async def preflight(listeners: Sequence[Listener], dsn: str, amqp_url: str) -> None:
    """Everything that can be checked before anything is created, in the order to fix it."""
    check_ports(listeners)
    await check_postgres(dsn)
    await check_rabbitmq(amqp_url)
