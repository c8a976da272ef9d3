"""Child processes of the bench: each logs to its own file and is always terminated."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

TERM_GRACE = 10.0
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A port nothing listens on right now (a child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it if the bench dies without cleaning up."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    def describe_exit(self) -> str:
        return f"{self.name} exited with code {self.process.returncode}; log: {self.log_path}"


async def spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    """Start ``smsbroker ARGS`` under this interpreter; stdout and stderr go to NAME.log."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as sink:  # the child keeps its own copy of the descriptor
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli.main",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches the bench only
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    log.debug("bench child started", name=name, pid=process.pid)
    return Child(name, process, log_path)


async def terminate(children: list[Child]) -> None:
    """SIGTERM every child, wait for them together, SIGKILL whoever is left after the grace."""
    live = [c for c in children if not c.exited]
    for child in live:
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signal.SIGTERM)
    if not live:
        return
    _, pending = await asyncio.wait(
        [asyncio.create_task(c.process.wait()) for c in live], timeout=TERM_GRACE
    )
    for child in live:
        if not child.exited:
            log.warning("bench child killed", name=child.name, pid=child.pid)
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
    for child in live:
        with contextlib.suppress(ProcessLookupError):
            await child.process.wait()
    for task in pending:
        task.cancel()


def child_env(database_url: str, amqp_url: str, queue_prefix: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        AMQP_URL=amqp_url,
        QUEUE_PREFIX=queue_prefix,
        LOG_FORMAT="json",
        WEBHOOK_ALLOW_PRIVATE="1",  # the bench's webhook receiver listens on this machine
        PYTHONUNBUFFERED="1",
    )
    return env
