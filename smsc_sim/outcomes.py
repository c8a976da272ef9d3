"""Which final state each simulated message gets, and how a receipt spells it.

The random mix exercises the gateway's status handling under load; the suffix rules make
individual messages deterministic so tests can ask for "this number is undeliverable".
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from broker.errors import InputError
from broker.smpp.constants import MessageState


@dataclass(frozen=True, slots=True)
class Outcome:
    """A receipt's final state: the text form's ``stat``/``err`` and the TLV message_state."""

    stat: str
    message_state: int
    err: str

    @property
    def delivered(self) -> bool:
        return self.stat == "DELIVRD"


OUTCOMES: dict[str, Outcome] = {
    o.stat: o
    for o in (
        Outcome("DELIVRD", MessageState.DELIVERED, "000"),
        Outcome("UNDELIV", MessageState.UNDELIVERABLE, "001"),
        Outcome("EXPIRED", MessageState.EXPIRED, "002"),
        Outcome("REJECTD", MessageState.REJECTED, "003"),
        Outcome("DELETED", MessageState.DELETED, "004"),
        Outcome("UNKNOWN", MessageState.UNKNOWN, "005"),
        Outcome("ACCEPTD", MessageState.ACCEPTED, "000"),
    )
}


def outcome_named(name: str, *, field: str = "outcomes") -> Outcome:
    """The outcome for a stat word (case-insensitive), or an InputError naming the choices."""
    outcome = OUTCOMES.get(name.strip().upper())
    if outcome is None:
        choices = ", ".join(OUTCOMES)
        raise InputError(
            f"unknown outcome {name!r}; choose from {choices}", code="BAD_OUTCOME", field=field
        )
    return outcome


def longest_suffix_match(rules: Mapping[str, object], destination: str) -> str | None:
    """The longest rule key that ``destination`` ends with, so specific rules beat broad ones."""
    best: str | None = None
    for suffix in rules:
        if destination.endswith(suffix) and (best is None or len(suffix) > len(best)):
            best = suffix
    return best


class OutcomePicker:
    """Draws outcomes from weights, unless a destination-suffix rule decides.

    ``seed`` makes the random mix reproducible.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        rules: Mapping[str, str] | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        validate_weights(weights)
        self._choices = [outcome_named(name) for name in weights]
        self._weights = [float(w) for w in weights.values()]
        self._only = self._choices[0] if len(self._choices) == 1 else None
        self._rules = {
            suffix: outcome_named(name, field="outcome_rules")
            for suffix, name in (rules or {}).items()
        }
        self._random = random.Random(seed)

    def pick(self, destination: str) -> Outcome:
        if self._rules:
            suffix = longest_suffix_match(self._rules, destination)
            if suffix is not None:
                return self._rules[suffix]
        if self._only is not None:
            return self._only
        return self._random.choices(self._choices, self._weights)[0]


def validate_weights(weights: Mapping[str, float]) -> None:
    if not weights:
        raise InputError("at least one outcome is needed", code="BAD_OUTCOME", field="outcomes")
    for name, weight in weights.items():
        outcome_named(name)
        if not isinstance(weight, int | float) or weight < 0 or weight != weight:
            raise InputError(
                f"weight of {name} must be a number >= 0", code="BAD_OUTCOME", field="outcomes"
            )
    if sum(weights.values()) <= 0:
        raise InputError("outcome weights must not all be 0", code="BAD_OUTCOME", field="outcomes")


def parse_outcomes(text: str) -> dict[str, float]:
    """``"DELIVRD=0.9,UNDELIV=0.1"`` → weights (a bare ``"DELIVRD"`` means weight 1)."""
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        stat = outcome_named(name).stat
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise InputError(
                f"weight {value!r} of {stat} is not a number", code="BAD_OUTCOME", field="outcomes"
            ) from None
        weights[stat] = weights.get(stat, 0.0) + weight
    validate_weights(weights)
    return weights
