"""Status events go to the webhook sender in AMQP messages of a bounded number of events."""

from __future__ import annotations

import asyncio
import uuid

from broker import notify
from broker.queues import Amqp
from broker.webhooks.events import MESSAGE_STATUS, make_event
from broker.webhooks.payloads import parse_payload


async def test_events_go_out_in_messages_of_at_most_a_chunk_each_all_of_them(
    amqp: Amqp,
) -> None:
    """250 events make three messages (100, 100, 50), every event once. A pack of 500 let the
    webhook sender's byte budget admit ~1,700 events at a time for 200 POSTs."""
    account = uuid.uuid4()
    events = [
        make_event(MESSAGE_STATUS, account, {"id": str(n)}, event_id=f"e{n}") for n in range(250)
    ]
    await notify.publish_events(amqp, events)
    channel = await amqp.connection.channel()
    try:
        queue = await channel.get_queue(amqp.names.webhooks, ensure=False)
        sizes: list[int] = []
        seen: list[str] = []
        async with asyncio.timeout(10):
            while sum(sizes) < 250:
                message = await queue.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.02)
                    continue
                parsed = parse_payload(message.body)
                sizes.append(len(parsed.events))
                seen += [e.id for e in parsed.events]
                await message.ack()
    finally:
        await channel.close()
    assert sorted(sizes) == [50, 100, 100]
    assert sorted(seen) == sorted(f"e{n}" for n in range(250))
