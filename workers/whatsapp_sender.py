"""The whatsapp role: charged messages out through the WhatsApp Business Cloud API.

It consumes the submit queue of every WhatsApp connector (the charge worker and the scheduler
fill it as for a carrier) and, per SubmitJob, claims the messages, posts each one (up to
``concurrency`` at once) and records them in one transaction: the wamid as the part's carrier
id and the message ``sent``, or, for a request the API refuses for good (a 4xx other than
429), the message ``failed`` and refunded, as a carrier's refusal. A 5xx, a 429 or a timeout
is tried again a few times; a message still not taken goes back to the queue.
Their statuses come back as webhooks (api.whatsapp_webhooks) and are applied as receipts.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

import aiohttp
import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage

from broker import whatsapp
from broker.notify import publish_events, status_events
from broker.queues import Amqp
from broker.status import PartStatus
from broker.store import connectors
from broker.store.connectors import WhatsAppConnector
from workers.consumer import Consumer
from workers.polling import every
from workers.submit_jobs import Outcomes, claim_job, expired, one_by_one, record, requeue

log = structlog.get_logger(__name__)

#: Pauses between the attempts at one message within one job.
ATTEMPT_PAUSES = (0.2, 1.0)


class Temporary(Exception):
    """The API did not take the message this time (5xx, 429, timeout, connection)."""


class WhatsAppSender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        amqp: Amqp,
        *,
        refresh_every: float = 5.0,
        validity: float = 48 * 3600,
        timeout: float = 10.0,
        concurrency: int = 32,
    ) -> None:
        self.pool = pool
        self.amqp = amqp
        self.validity = validity
        self.timeout = timeout
        self.connectors: dict[str, WhatsAppConnector] = {}
        self.consumers: dict[str, Consumer] = {}
        self._limit = asyncio.Semaphore(concurrency)
        self._refresh_every = refresh_every
        self._refresher: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        await self.refresh_connectors()
        refresh = every(self._refresh_every, self.refresh_connectors)
        self._refresher = asyncio.create_task(refresh)

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        await asyncio.gather(*(c.stop() for c in self.consumers.values()))
        if self._http is not None:
            await self._http.close()

    async def refresh_connectors(self) -> None:
        """Consume the queues of WhatsApp connectors added since; pick up changed settings
        (a rotated token) of the others."""
        for found in await connectors.whatsapp_connectors(self.pool):
            self.connectors[found.name] = found
            if found.name in self.consumers:
                continue
            consumer = Consumer(
                self.amqp,
                self.amqp.names.submit(found.name),
                one_by_one(self.handle, found.name),
                name=f"whatsapp.{found.name}",
                prefetch=8,
            )
            await consumer.start()
            self.consumers[found.name] = consumer
            log.info("whatsapp connector started", connector=found.name)

    async def handle(self, name: str, message: AbstractIncomingMessage, attempt: int = 1) -> None:
        """Post one SubmitJob's messages; raise (and the consumer retries) if not recorded."""
        taken = await claim_job(self.pool, self.amqp, name, message, attempt)
        if taken is None:
            return
        job, claimed = taken
        out = Outcomes()
        connector = self.connectors[name]
        await asyncio.gather(
            *(self._send(connector, row, out, job.plain_bodies.get(row["id"])) for row in claimed)
        )
        failed_rows = await record(self.pool, name, out)
        if out.retry:
            log.info("whatsapp messages requeued", connector=name, count=len(out.retry))
            await requeue(self.amqp, name, job, out.retry)
        await publish_events(self.amqp, status_events(failed_rows))

    async def _send(
        self,
        connector: WhatsAppConnector,
        row: asyncpg.Record,
        out: Outcomes,
        plain_body: str | None,
    ) -> None:
        """Post one claimed message; ``plain_body`` (an OTP's text) is never logged."""
        mid: UUID = row["id"]
        too_late = expired(row, self.validity, "WhatsApp")
        if too_late is not None:
            out.failed[mid] = too_late
            return
        payload = whatsapp.text_message(
            row["to_number"], plain_body if plain_body is not None else row["body"]
        )
        for pause in (*ATTEMPT_PAUSES, None):
            try:
                async with self._limit:
                    status, answer = await self._post(connector, payload)
            except Temporary as exc:
                if pause is None:
                    log.warning(
                        "whatsapp API unavailable", connector=connector.name, error=str(exc)
                    )
                    out.retry.append(mid)
                    return
                await asyncio.sleep(pause)
                continue
            wamid = whatsapp.sent_id(answer) if status < 300 else None
            if wamid is not None:
                out.parts.append((mid, 1, wamid, PartStatus.SENT, None, None))
                out.sent.append(mid)
                return
            code, text = whatsapp.refusal(answer, status)
            out.parts.append((mid, 1, None, PartStatus.FAILED, None, code))
            out.failed[mid] = ("SUBMIT_REJECTED", f"WhatsApp refused the message: {code} {text}")
            log.info("whatsapp refused a message", connector=connector.name, code=code)
            return

    async def _post(
        self, connector: WhatsAppConnector, payload: dict[str, object]
    ) -> tuple[int, object]:
        """(status, JSON answer) of a final answer; Temporary for one worth another try."""
        assert self._http is not None
        url = whatsapp.send_url(connector.url, connector.phone_number_id)
        headers = {"Authorization": f"Bearer {connector.token}"}
        try:
            async with self._http.post(url, json=payload, headers=headers) as resp:
                if resp.status >= 500 or resp.status == 429:
                    raise Temporary(f"HTTP {resp.status}")
                try:
                    answer: object = await resp.json(content_type=None)
                except ValueError:
                    answer = None
                if resp.status < 300 and whatsapp.sent_id(answer) is None:
                    raise Temporary("an answer without a message id")
                return resp.status, answer
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Temporary(repr(exc)) from exc
