"""What the simulator remembers about each accepted submit_sm, for receipts and for tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SubmitRecord:
    """One accepted submit_sm; ``outcome`` is the receipt's stat when one was asked for."""

    message_id: str
    system_id: str
    source_addr: str
    destination_addr: str
    short_message: bytes
    data_coding: int
    esm_class: int
    registered_delivery: int
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    tlvs: dict[int, bytes] = field(default_factory=dict)
    #: The submit_sm validity_period as received ("" when the ESME left it empty).
    validity_period: str = ""
    submitted_at: float = 0.0  # wall-clock seconds, for the receipt's submit date
    outcome: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "message_id": self.message_id,
            "system_id": self.system_id,
            "source_addr": self.source_addr,
            "destination_addr": self.destination_addr,
            "short_message": self.short_message.hex(),
            "data_coding": self.data_coding,
            "esm_class": self.esm_class,
            "registered_delivery": self.registered_delivery,
            "tlvs": {f"0x{tag:04x}": value.hex() for tag, value in self.tlvs.items()},
            "validity_period": self.validity_period,
            "submitted_at": self.submitted_at,
            "outcome": self.outcome,
        }
