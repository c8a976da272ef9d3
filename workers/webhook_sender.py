"""Delivers webhook events to customers: signed, logged attempt by attempt, retried with backoff.

An AMQP message is acked only once every attempt it caused is written to webhook_attempts and
every retry is confirmed on its retry queue; a crash in between redelivers the message, so a
customer may see an event twice (same ``webhook-id``) but never loses one. Retries wait in
``.webhook_retry(delay)`` queues whose TTL dead-letters them back into ``.webhooks``. An
endpoint's ``format`` (broker.webhooks.formats) chooses the body it gets, on retries too.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import Counter, Histogram

from broker.config import Settings
from broker.errors import DependencyUnavailable
from broker.http_client import HttpClient
from broker.queues import Amqp
from broker.webhooks import attempts
from broker.webhooks.attempts import AttemptRow
from broker.webhooks.delivery import Delivery, Outcome, post
from broker.webhooks.destinations import webhook_resolver
from broker.webhooks.formats import STANDARD
from broker.webhooks.payloads import Parsed, PayloadError, Retry, parse_payload, retries_payload
from broker.webhooks.policy import Verdict, judge, retry_tier
from broker.webhooks.targets import AccountTargets, TargetCache
from workers.consumer import Consumer
from workers.poison import dead_letter_body, dead_letter_rejected

log = structlog.get_logger(__name__)

ATTEMPTS = Counter(
    "smsbroker_webhook_attempts_total",
    "Webhook delivery attempts by outcome: delivered, retried, gone (410), given_up (no"
    " attempt left); and dropped: not attempted, the account or endpoint is gone",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "smsbroker_webhook_attempt_seconds",
    "Time a webhook attempt took, by outcome",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DROPPED = "dropped"
#: The outcome label of each verdict.
OUTCOMES: dict[Verdict, str] = {
    Verdict.DELIVERED: "delivered",
    Verdict.RETRY: "retried",
    Verdict.GONE: "gone",
    Verdict.GIVE_UP: "given_up",
}

DEFAULT_PREFETCH = 50
#: Event payloads being delivered at once, by size: about four full AMQP messages of 100 events
#: (~600 bytes each), enough for the POST concurrency; the prefetch alone let 25,000 in at once.
BYTES_IN_HAND = 256 * 1024
DEFAULT_CONCURRENCY = 200


def _host(url: str) -> str | None:
    """Logged instead of the URL, whose path or query may carry a customer's token."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


class WebhookSender:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        amqp: Amqp,
        *,
        prefetch: int = DEFAULT_PREFETCH,
        concurrency: int = DEFAULT_CONCURRENCY,
        cache_ttl: float = 2.0,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._amqp = amqp
        self._slots = asyncio.Semaphore(concurrency)
        self._targets = TargetCache(pool, ttl=cache_ttl)
        self._client: HttpClient | None = None
        self._consumer = Consumer(
            amqp,
            amqp.names.webhooks,
            self._handle,
            name="webhooks",
            prefetch=prefetch,
            max_bytes=BYTES_IN_HAND,
            grace=settings.webhook_timeout + 5,
        )

    async def start(self) -> None:
        await self._amqp.declare_topology(self._settings.webhook_retry_delays)
        self._client = HttpClient(webhook_resolver(self._settings.webhook_allow_private))
        await self._consumer.start()
        log.info("webhook sender started", queue=self._amqp.names.webhooks)

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking messages, let those in flight finish for ``grace`` seconds, then close."""
        await self._consumer.stop(grace)
        if self._client is not None:
            await self._client.close()
            self._client = None
        log.info("webhook sender stopped")

    async def _handle(self, deliveries: list[AbstractIncomingMessage], attempt: int) -> None:
        for message in deliveries:
            await self._handle_one(message)

    async def _handle_one(self, message: AbstractIncomingMessage) -> None:
        """Deliver one AMQP message's events; raises (the consumer retries) if not durable."""
        source = self._amqp.names.webhooks
        try:
            parsed = parse_payload(message.body)
        except PayloadError as exc:
            await dead_letter_body(
                self._amqp, source, message.body, exc.message, version=exc.version
            )
            return
        if parsed.problems:
            log.warning(
                "webhook payload items dropped",
                count=len(parsed.problems),
                reasons=parsed.problems[:5],
            )
        if parsed.rejected:
            await dead_letter_rejected(self._amqp, source, parsed.rejected)
        await self.process(parsed)

    async def process(self, parsed: Parsed) -> None:
        """Deliver, record every attempt, publish retries; raises if any of that is not durable."""
        account_ids = [e.account_id for e in parsed.events]
        account_ids += [r.event.account_id for r in parsed.retries]
        if not account_ids:
            return
        targets = await self._targets.get(account_ids)
        deliveries = self._fan_out(parsed, targets)
        outcomes = await self._attempt_all(deliveries)
        rows: list[AttemptRow] = []
        retries: dict[int, list[Retry]] = defaultdict(list)
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            verdict = judge(
                outcome.status_code, delivery.attempt, self._settings.webhook_retry_delays
            )
            rows.append(AttemptRow(delivery, outcome, verdict.final))
            self._log_attempt(delivery, outcome, verdict)
            ATTEMPTS.labels(OUTCOMES[verdict]).inc()
            ATTEMPT_SECONDS.labels(OUTCOMES[verdict]).observe(outcome.duration_ms / 1000)
            if verdict is Verdict.RETRY:
                retries[retry_tier(delivery.attempt)].append(
                    Retry.to(
                        delivery.event, delivery.webhook_id, delivery.url, delivery.attempt + 1
                    )
                )
        await attempts.record(self._pool, rows)
        await asyncio.gather(*(self._publish_retries(t, rs) for t, rs in retries.items()))

    def _fan_out(self, parsed: Parsed, targets: dict[UUID, AccountTargets]) -> list[Delivery]:
        out: list[Delivery] = []
        # A callback_url delivery is signed with the account's secret and, for 24 h after a
        # rotation, with the previous one too (both signatures in one header).
        now = datetime.now(UTC)
        for event in parsed.events:
            account = targets[event.account_id]
            for endpoint in account.subscribed(event.type):
                out.append(
                    Delivery(
                        event, endpoint.id, endpoint.url, endpoint.secret, 1, format=endpoint.format
                    )
                )
            if event.callback_url is not None:
                secrets = account.callback_secrets(now)
                if not secrets:
                    log.warning(
                        "callback dropped: unknown account", account_id=str(event.account_id)
                    )
                    ATTEMPTS.labels(DROPPED).inc()
                    continue
                out.append(Delivery(event, None, event.callback_url, secrets[0], 1, secrets[1:]))
        for retry in parsed.retries:
            delivery = self._retry_delivery(retry, targets[retry.event.account_id], now)
            if delivery is not None:
                out.append(delivery)
        return out

    def _retry_delivery(
        self, retry: Retry, account: AccountTargets, now: datetime
    ) -> Delivery | None:
        previous: tuple[str, ...] = ()
        format_name = STANDARD
        if retry.webhook_id is None:
            secrets = account.callback_secrets(now)
            secret = secrets[0] if secrets else None
            previous = secrets[1:]
            url = retry.url
        else:
            endpoint = account.endpoint(retry.webhook_id)
            secret = None if endpoint is None else endpoint.secret
            url = retry.url if endpoint is None else endpoint.url
            if endpoint is not None:
                format_name = endpoint.format
        if secret is None:
            log.info(
                "webhook retry dropped: endpoint or account deleted",
                account_id=str(retry.event.account_id),
                webhook_id=None if retry.webhook_id is None else str(retry.webhook_id),
                event_id=retry.event.id,
            )
            ATTEMPTS.labels(DROPPED).inc()
            return None
        return Delivery(
            retry.event, retry.webhook_id, url, secret, retry.attempt, previous, format_name
        )

    async def _attempt_all(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Every delivery's outcome, in order. A POST's task is made once a slot is free: a task
        each up front was 500 per AMQP message, thousands under a backlog, mostly waiting."""
        client = self._client
        if client is None:
            raise DependencyUnavailable("webhook sender is not started", code="NOT_STARTED")
        tasks: list[asyncio.Task[Outcome]] = []
        try:
            for delivery in deliveries:
                await self._slots.acquire()
                task = asyncio.create_task(self._post(client, delivery))
                task.add_done_callback(self._release)
                tasks.append(task)
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    def _release(self, _: asyncio.Task[Outcome]) -> None:
        self._slots.release()

    async def _post(self, client: HttpClient, delivery: Delivery) -> Outcome:
        return await post(
            client,
            delivery,
            timeout=self._settings.webhook_timeout,
            allow_private=self._settings.webhook_allow_private,
        )

    async def _publish_retries(self, tier: int, retries: Sequence[Retry]) -> None:
        await self._amqp.publish(self._amqp.retry_queue(tier), retries_payload(retries))

    def _log_attempt(self, delivery: Delivery, outcome: Outcome, verdict: Verdict) -> None:
        bound = log.bind(
            account_id=str(delivery.event.account_id),
            event_id=delivery.event.id,
            event_type=delivery.event.type,
            webhook_id=None if delivery.webhook_id is None else str(delivery.webhook_id),
            host=_host(delivery.url),
            attempt=delivery.attempt,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
        )
        message_id = delivery.event.message_id
        if message_id is not None:
            bound = bound.bind(message_id=message_id)
        if verdict is Verdict.DELIVERED:
            bound.debug("webhook delivered")
        elif verdict is Verdict.GONE:
            bound.info("webhook endpoint answered 410 Gone; no retry")
        elif verdict is Verdict.RETRY:
            bound.info("webhook attempt failed; retry scheduled", error=outcome.error)
        else:
            bound.warning("webhook delivery given up after last attempt", error=outcome.error)
