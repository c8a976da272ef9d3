"""Route choice with failover, as a table: longest prefix, priority, weight, out, avoid."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from broker.routing import Route, RouteTable


def route(prefix: str, connector: str, **kw: object) -> Route:
    return Route(prefix, connector, Decimal(1), **kw)  # type: ignore[arg-type]


TABLE = RouteTable(
    [
        route("", "default"),
        route("233", "mtn", priority=0),
        route("233", "vodafone", priority=1),
        route("2332", "glo", out=True),
        route("44", "a", weight=3),
        route("44", "b", weight=1),
        route("49", "down1", out=True, priority=0),
        route("49", "down2", out=True, priority=1),
    ]
)


@pytest.mark.parametrize(
    ("number", "avoid", "connector"),
    [
        ("+15551234567", (), "default"),  # no longer prefix: the default route
        ("+233501234567", (), "mtn"),  # the lowest priority first
        ("+233501234567", ("mtn",), "vodafone"),  # a hand-over passes the first over
        ("+233201234567", (), "glo"),  # one route, out: still taken (messages wait for it)
        ("+233201234567", ("glo",), None),  # nothing else carries the prefix
        ("+4915112345678", (), "down1"),  # every one out: the first anyway
    ],
)
def test_the_route_a_number_takes(
    number: str, avoid: tuple[str, ...], connector: str | None
) -> None:
    found = TABLE.match(number, avoid=frozenset(avoid))
    assert (found.connector if found else None) == connector


def test_an_out_connector_is_passed_over_for_the_next_priority() -> None:
    table = RouteTable([route("233", "mtn", out=True), route("233", "vodafone", priority=1)])
    assert table.match("+233501234567").connector == "vodafone"  # type: ignore[union-attr]


def test_weights_share_a_priority() -> None:
    picks = Counter(TABLE.match("+447911123456").connector for _ in range(4000))  # type: ignore[union-attr]
    assert set(picks) == {"a", "b"}
    assert 2.4 < picks["a"] / picks["b"] < 3.8
