"""Message ids are UUIDv7: valid RFC 9562 UUIDs, ordered by time, telling when they were made."""

from __future__ import annotations

import time
import uuid

from hypothesis import given
from hypothesis import strategies as st

from broker.ids import issued_at, new_id

NOW_NS = 1_800_000_000_000_000_000


@given(st.integers(min_value=0, max_value=(1 << 48) - 1))
def test_an_id_is_a_version_7_rfc_uuid_carrying_its_millisecond(ms: int) -> None:
    value = new_id(ms * 1_000_000)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert issued_at(value) == ms / 1000
    assert uuid.UUID(str(value)) == value


def test_ids_sort_by_time_and_differ_within_a_millisecond() -> None:
    earlier = [new_id(NOW_NS) for _ in range(1000)]
    later = new_id(NOW_NS + 1_000_000)
    assert len(set(earlier)) == 1000
    assert all(e < later for e in earlier)


def test_issued_at_is_now_for_a_fresh_id_and_none_for_a_random_uuid() -> None:
    assert abs(time.time() - (issued_at(new_id()) or 0)) < 1
    assert issued_at(uuid.uuid4()) is None
