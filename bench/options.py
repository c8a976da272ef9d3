"""What one bench run does: validated once, so a bad option fails before anything starts."""

from __future__ import annotations

from dataclasses import dataclass

from broker.errors import InputError

MAX_RECIPIENTS_PER_REQUEST = 1000
MAX_RATE = 100_000.0


@dataclass(frozen=True)
class BenchOptions:
    messages: int = 10_000
    concurrency: int = 50
    recipients_per_request: int = 1
    body: str = "Your verification code is 123456. It expires in 10 minutes."
    api_procs: int = 1
    worker_procs: int = 1
    split_roles: bool = False
    in_process: bool = False
    receipt_delay: tuple[float, float] = (0.01, 0.05)
    timeout: float = 600.0
    keep: bool = False
    # Requests per second on a fixed schedule (open loop); None keeps ``concurrency`` in flight.
    rate: float | None = None

    def __post_init__(self) -> None:
        self._positive("messages", self.messages, 10_000_000)
        self._positive("concurrency", self.concurrency, 10_000)
        self._positive(
            "recipients_per_request", self.recipients_per_request, MAX_RECIPIENTS_PER_REQUEST
        )
        self._positive("api_procs", self.api_procs, 64)
        self._positive("worker_procs", self.worker_procs, 64)
        if not self.body:
            raise InputError("the message body must not be empty", field="body")
        if not 0 < self.timeout <= 86_400:
            raise InputError("timeout must be in (0, 86400] seconds", field="timeout")
        low, high = self.receipt_delay
        if not 0 <= low <= high <= 60:
            raise InputError("receipt delay must be 0 <= min <= max <= 60", field="receipt_delay")
        if self.rate is not None and not 0 < self.rate <= MAX_RATE:
            raise InputError(
                f"rate must be in (0, {MAX_RATE:.0f}] requests per second, got {self.rate}",
                field="rate",
            )
        if self.rate is not None and self.requests / self.rate >= self.timeout:
            # Sure to time out: say so now rather than after the timeout.
            raise InputError(
                f"{self.requests:,} requests at {self.rate:g}/s take "
                f"{self.requests / self.rate:g} s, not less than the timeout ({self.timeout:g} s)",
                field="rate",
            )

    @staticmethod
    def _positive(name: str, value: int, hi: int) -> None:
        if not 1 <= value <= hi:
            raise InputError(f"{name} must be between 1 and {hi}, got {value}", field=name)

    @property
    def requests(self) -> int:
        return -(-self.messages // self.recipients_per_request)
