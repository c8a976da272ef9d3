"""The fake Cloud API: takes text messages as Meta's API does and reports on them as its
webhooks do.

``POST /{version}/{phone-number-id}/messages`` with the configured Bearer token and a text
message is answered with a new wamid; then, after ``status_delay`` seconds, each status of
``statuses`` (sent, delivered, read by default) is POSTed to ``callback_url``, signed with the
app secret. Recipients ending in a suffix of ``refuse`` are answered 400 with the Cloud API's
error body (that error code); those ending in one of ``fail_after`` get a ``failed`` status
instead of delivered; while ``unavailable`` counts down, sends are answered 500.
``POST /control/inbound`` {"from", "text"} (or ``inject_inbound``) posts an inbound message's
webhook. What was sent is kept in ``sent``, in order.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from broker import whatsapp

log = structlog.get_logger(__name__)


@dataclass
class WhatsAppSimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    token: str = "test-token"
    app_secret: str = "test-secret"
    #: Where the webhooks go (the gateway's /webhooks/whatsapp/{connector}); None: nowhere.
    callback_url: str | None = None
    phone_number_id: str = "100000000000001"
    display_number: str = "15550000001"
    status_delay: float = 0.05
    statuses: tuple[str, ...] = ("sent", "delivered", "read")
    #: Recipient suffix → the Cloud API error code it is refused with (HTTP 400).
    refuse: dict[str, int] = field(default_factory=dict)
    #: Recipient suffixes whose messages end ``failed`` instead of delivered.
    fail_after: tuple[str, ...] = ()
    #: The next this many sends are answered 500 (an outage), each taking one off.
    unavailable: int = 0


@dataclass(frozen=True)
class SentRecord:
    """A message the fake took: its wamid, the request's path, headers and JSON body."""

    wamid: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def _error(status: int, code: int, message: str, kind: str = "OAuthException") -> web.Response:
    trace = base64.urlsafe_b64encode(os.urandom(9)).decode()
    body = {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": trace}}
    return web.json_response(body, status=status)


class WhatsAppSimulator:
    def __init__(self, config: WhatsAppSimConfig) -> None:
        self.config = config
        self.sent: list[SentRecord] = []
        #: (status code of the gateway's answer, the webhook body) of every webhook posted.
        self.posted: list[tuple[int, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = config.port

    @property
    def base_url(self) -> str:
        """What a connector's --url is: the API base up to its version."""
        return f"http://{self.config.host}:{self.port}/v21.0"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{version}/{phone_number_id}/messages", self._messages)
        app.router.add_post("/control/inbound", self._control_inbound)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.host, self.config.port).start()
        self.port = self._runner.addresses[0][1]
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        log.info("whatsapp_sim.listening", host=self.config.host, port=self.port)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _messages(self, request: web.Request) -> web.Response:
        if self.config.unavailable > 0:
            self.config.unavailable -= 1
            return _error(500, 2, "Service temporarily unavailable", "OAuthException")
        if request.headers.get("Authorization") != f"Bearer {self.config.token}":
            return _error(401, 190, "Invalid OAuth access token.")
        if request.match_info["phone_number_id"] != self.config.phone_number_id:
            return _error(400, 100, "Unsupported post request: unknown phone number id.")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, 100, "Invalid JSON.", "GraphMethodException")
        problem = _invalid(body)
        if problem is not None:
            return _error(400, 100, problem, "GraphMethodException")
        to: str = body["to"]
        for suffix, code in self.config.refuse.items():
            if to.endswith(suffix):
                return _error(400, code, f"(#{code}) Recipient cannot be reached.")
        wamid = "wamid." + base64.b64encode(os.urandom(24)).decode()
        self.sent.append(SentRecord(wamid, request.path, dict(request.headers), body))
        self._spawn(self._report(wamid, to))
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid}],
        }
        return web.json_response(answer)

    async def _control_inbound(self, request: web.Request) -> web.Response:
        body = await request.json()
        wamid = await self.inject_inbound(str(body["from"]), str(body["text"]))
        return web.json_response({"id": wamid})

    async def inject_inbound(self, sender: str, text: str) -> str:
        """Post an inbound text from ``sender`` (digits) to the callback; its wamid."""
        wamid = "wamid." + base64.b64encode(os.urandom(24)).decode()
        await self._post(
            whatsapp.inbound_webhook(
                self.config.phone_number_id,
                self.config.display_number,
                wamid,
                sender.lstrip("+"),
                text,
                int(time.time()),
            )
        )
        return wamid

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, wamid: str, to: str) -> None:
        """The message's statuses, one webhook each, in order."""
        failing = any(to.endswith(s) for s in self.config.fail_after)
        for status in self.config.statuses:
            if failing and status in ("delivered", "read"):
                status = "failed"
            await asyncio.sleep(self.config.status_delay)
            await self._post(
                whatsapp.status_webhook(
                    self.config.phone_number_id,
                    self.config.display_number,
                    wamid,
                    to,
                    status,
                    int(time.time()),
                )
            )
            if status == "failed":
                return

    async def _post(self, doc: dict[str, Any]) -> None:
        """One signed webhook to the callback URL (a failure is logged: Meta would retry)."""
        if self.config.callback_url is None or self._http is None:
            return
        raw = json.dumps(doc, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            whatsapp.SIGNATURE_HEADER: whatsapp.signature(self.config.app_secret, raw),
        }
        try:
            async with self._http.post(self.config.callback_url, data=raw, headers=headers) as r:
                self.posted.append((r.status, doc))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("whatsapp_sim.webhook_failed", error=repr(exc))


def _invalid(body: Any) -> str | None:
    """Why a send request is not a Cloud API text message; None if it is one."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if body.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required."
    to = body.get("to")
    if not isinstance(to, str) or not to.isdigit():
        return "The parameter to is required (digits)."
    if body.get("type", "text") != "text":
        return "Only text messages are supported by this fake."
    text = body.get("text")
    if not isinstance(text, dict) or not isinstance(text.get("body"), str) or not text["body"]:
        return "The parameter text['body'] is required."
    if len(text["body"]) > 4096:
        return "Param text['body'] must be at most 4096 characters long."
    return None
