"""A TCP proxy for fault tests: a dependency that goes away and comes back, without touching it.

Clients connect to the proxy's port and every byte is forwarded to the target. ``cut()`` drops
every open connection and stops listening, so new connections are refused as if the server
were down; ``cut(reset=True)`` keeps listening but resets every new connection at once (a
server that accepts and dies), counting them in ``refused`` so a test can wait for a client's
reconnect attempt; ``restore()`` forwards again, on the same port. The real server is never
restarted, so other tests sharing it are not disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

log = structlog.get_logger(__name__)

_CHUNK = 65536


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port``; cut and restore on demand."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._resetting = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.refused = 0

    @property
    def is_up(self) -> bool:
        return self._server is not None and not self._resetting

    async def start(self) -> None:
        """Listen (on an ephemeral port the first time, on the same port after a cut)."""
        self._resetting = False
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self, *, reset: bool = False) -> int:
        """Abort every forwarded connection and refuse new ones; returns how many were cut.

        New connections are refused by the kernel (nothing listens), or with ``reset`` accepted
        and reset at once.
        """
        server = None
        if reset:
            self._resetting = True
        else:
            server, self._server = self._server, None
        if server is not None:
            server.close()
        cut = len(self._writers) // 2
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()
        log.info("tcp_proxy.cut", port=self.port, connections=cut)
        return cut

    async def restore(self) -> None:
        await self.start()
        log.info("tcp_proxy.restored", port=self.port)

    async def stop(self) -> None:
        await self.cut()
        pipes = list(self._pipes)
        for task in pipes:
            task.cancel()
        if pipes:
            await asyncio.gather(*pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_up:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        if not self.is_up:  # cut while connecting upstream
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink, (writer, up_writer)))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        """Copy one direction; when either side ends, end both."""
        try:
            while data := await source.read(_CHUNK):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            for writer in pair:
                self._writers.discard(writer)
                with contextlib.suppress(RuntimeError):
                    writer.transport.abort()
