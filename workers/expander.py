"""The expand worker: a send to groups too large to make in its request becomes messages here.

The API stored the send (batch_expansions) and answered at once. A worker leases one expansion
at a time and walks its recipients a page at a time in phone order: each page becomes one
IngestRequest (personal texts, opt-outs and refusals set), published confirmed to the ingest
queue, and only then is the expansion's position advanced. The charge worker charges each
message as it arrives, so an account that runs out ends the rest ``failed``
``INSUFFICIENT_CREDITS``, uncharged.

A worker killed mid-way leaves its lease to run out; the next one resumes at the last
position recorded. The page it made again carries the same message ids (derived from the batch
and the number), which PostgreSQL stores and charges once: every member gets one message.
"""

from __future__ import annotations

import uuid

import asyncpg
import structlog

from broker.audiences import GroupSend, Personalizer, recipients
from broker.ids import derived_id
from broker.queue_messages import IngestBatch, IngestRequest
from broker.queues import Amqp
from broker.store import audiences as store
from broker.store.audiences import Expansion, Member
from workers.polling import PollingWorker

log = structlog.get_logger(__name__)


def page_request(
    job: Expansion, send: GroupSend, personal: Personalizer, members: list[Member]
) -> IngestRequest:
    """One page of recipients as the request the charge worker takes."""
    ids = [derived_id(job.batch_id, m.phone) for m in members]
    bodies: dict[uuid.UUID, str] = {}
    refused: dict[uuid.UUID, str] = {}
    for mid, member in zip(ids, members, strict=True):
        text, code = personal.made(member.phone, member.values)
        if personal.template is not None:
            bodies[mid] = text
        if code is not None:
            refused[mid] = code
    return IngestRequest(
        channel=send.channel,
        account_id=job.account_id,
        batch_id=job.batch_id,
        body=personal.fallback,
        sender=send.sender,
        client_ref=send.client_ref,
        callback_url=send.callback_url,
        accepted_at=send.accepted_at,
        recipients=[(mid, m.phone) for mid, m in zip(ids, members, strict=True)],
        scheduled_at=send.scheduled_at,
        expires_at=send.expires_at,
        opted_out=[mid for mid, m in zip(ids, members, strict=True) if m.opted_out],
        bodies=bodies,
        refused=refused,
    )


class Expander(PollingWorker):
    name = "expander"

    def __init__(
        self,
        pool: asyncpg.Pool,
        amqp: Amqp,
        *,
        every: float = 0.5,
        page_size: int = 1000,
        lease: float = 10.0,
    ) -> None:
        super().__init__(every=every, batch=1)
        self.pool = pool
        self.amqp = amqp
        self.page_size = page_size
        self.lease = lease
        self.owner = uuid.uuid4()

    async def run_once(self) -> int:
        """Expand the oldest expansion nobody holds; 1 if there was one (look again at once)."""
        job = await store.claim(self.pool, self.owner, self.lease)
        if job is None:
            return 0
        await self.expand(job)
        return 1

    async def expand(self, job: Expansion) -> None:
        bound = log.bind(batch_id=str(job.batch_id), account_id=str(job.account_id))
        send = GroupSend.model_validate_json(job.send)
        personal = Personalizer.of(send)
        made = job.expanded
        async for page in recipients(
            self.pool,
            job.account_id,
            job.group_ids,
            job.numbers,
            position=job.position,
            page_size=self.page_size,
        ):
            if page.members:
                request = page_request(job, send, personal, page.members)
                await self.amqp.publish(self.amqp.names.ingest, IngestBatch(requests=[request]))
            async with self.pool.acquire() as conn:
                held = await store.advance(
                    conn,
                    job.batch_id,
                    self.owner,
                    page.position,
                    len(page.members),
                    self.lease,
                    done=page.last,
                )
            if not held:
                bound.warning("expansion lease lost to another worker; leaving it")
                return
            made += len(page.members)
        bound.info("batch expanded", messages=made)
