"""Prometheus metrics that the core updates: carrier binds, submits, receipts and credits.

They live in the default registry, so whichever process runs the code exports them: a worker
on its ``--metrics-port`` (workers.metrics_server), ``smsbroker dev`` and the API on /metrics.
Labels stay few and bounded (a connector, a carrier account, a command_status), never a
message or an account. Bind and window gauges are read from the live connectors at scrape
time, so the submit path pays nothing for them.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

SUBMIT_SM = Counter(
    "smsbroker_smpp_submit_sm_total",
    "submit_sm answered by the carrier, by connector and command_status (hex); a load"
    " refusal retried counts once per answer",
    ["connector", "command_status"],
)
PARTS_SUBMITTED = Counter(
    "smsbroker_smpp_parts_submitted_total",
    "Parts submitted to a connector that got a final answer (accepted or refused)",
    ["connector"],
)
SUBMIT_UNANSWERED = Counter(
    "smsbroker_smpp_submit_unanswered_total",
    "submit_sm written but never answered (timeout or bind lost); the message is requeued",
    ["connector"],
)
RECEIPT_LATENCY = Histogram(
    "smsbroker_receipt_latency_seconds",
    "From a part's submit to its final receipt applied, by the connector it went out on",
    ["connector"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
RECEIPTS_PARKED = Counter(
    "smsbroker_receipts_parked_total",
    "Final receipts that found no part (yet) and were parked until it is recorded",
)
CREDITS_CHARGED = Counter(
    "smsbroker_credits_charged_total", "Credits taken from balances for messages sent"
)
CREDITS_REFUNDED = Counter(
    "smsbroker_credits_refunded_total", "Credits given back for failed or canceled messages"
)


def status_hex(command_status: int) -> str:
    """The label of a command_status, as the SMPP specification writes it: 0x00000000."""
    return f"0x{command_status:08X}"


def count_credits(counter: Counter, amount: Decimal | int | float | None) -> None:
    if amount:
        counter.inc(float(amount))


@dataclass(frozen=True, slots=True)
class ConnectorSample:
    """One connector's binds as seen at a scrape."""

    name: str
    bound: dict[str, int]  # bind mode (trx, tx, rx) → sessions bound
    in_flight: int  # submit_sm awaiting their response, over every bind
    window: int  # the window of one bind


class Sampled(Protocol):
    def metrics_sample(self) -> ConnectorSample: ...


class _ConnectorCollector(Collector):
    """Reads binds and windows off every live connector of the process when scraped."""

    def __init__(self) -> None:
        self._connectors: weakref.WeakSet[Sampled] = weakref.WeakSet()

    def track(self, connector: Sampled) -> None:
        self._connectors.add(connector)

    def collect(self) -> Iterator[Metric]:
        binds = GaugeMetricFamily(
            "smsbroker_smpp_binds_up",
            "SMPP sessions bound, by connector and bind mode (trx, tx, rx)",
            labels=["connector", "mode"],
        )
        in_use = GaugeMetricFamily(
            "smsbroker_smpp_window_in_use",
            "submit_sm awaiting their response, over the connector's binds",
            labels=["connector"],
        )
        size = GaugeMetricFamily(
            "smsbroker_smpp_window_size",
            "Window room of the connector's bound transmitters (window x binds)",
            labels=["connector"],
        )
        bound: dict[tuple[str, str], int] = defaultdict(int)
        flying: dict[str, int] = defaultdict(int)
        room: dict[str, int] = defaultdict(int)
        for connector in list(self._connectors):
            sample = connector.metrics_sample()
            flying[sample.name] += sample.in_flight
            for mode, count in sample.bound.items():
                bound[(sample.name, mode)] += count
                if mode != "rx":
                    room[sample.name] += count * sample.window
        for (name, mode), count in sorted(bound.items()):
            binds.add_metric([name, mode], count)
        for name in sorted(flying):
            in_use.add_metric([name], flying[name])
            size.add_metric([name], room[name])
        yield binds
        yield in_use
        yield size

    def describe(self) -> Iterator[Metric]:
        return iter(())


CONNECTORS = _ConnectorCollector()
REGISTRY.register(CONNECTORS)
