"""Message templates: ``{{variable}}`` placeholders and the values each recipient fills them with.

Pure: no I/O. A recipient's values come from its contact (``name``, ``first_name``,
``last_name``, ``phone``, ``email`` and every ``fields`` key), and the send's ``variables``
fill whatever the contact does not have: a value of the contact's own always wins, so a
template personalizes a group while the send supplies the shared parts (a code, a date).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from broker.errors import InputError

#: A placeholder: ``{{name}}``, spaces inside the braces allowed.
NAME: Final = r"[A-Za-z_][A-Za-z0-9_.-]{0,63}"
_PLACEHOLDER = re.compile(r"\{\{\s*(" + NAME + r")\s*\}\}")
#: The values every contact has a name for (``name`` is first and last name together).
CONTACT_VARIABLES: Final = ("name", "first_name", "last_name", "phone", "email")


class MissingVariable(InputError):
    """A placeholder no value was given for: the message names it (and whom it was for)."""

    def __init__(self, name: str, phone: str | None = None, *, count: int = 1) -> None:
        whom = ""
        if phone is not None:
            whom = f" for {phone}" if count <= 1 else f" for {count} recipients, e.g. {phone}"
        super().__init__(
            f"Missing variable: {name}{whom}; give it in `variables`",
            code="MISSING_VARIABLE",
            field="variables",
        )
        self.name = name


def variables(body: str) -> list[str]:
    """The placeholders of ``body``, each once, in the order they first appear."""
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(body)))


def check(body: str) -> list[str]:
    """The variables of a template body; InputError if a ``{{`` or ``}}`` is not part of a
    well-formed placeholder (a typo there would otherwise reach every recipient verbatim)."""
    rest = _PLACEHOLDER.sub("", body)
    for token in ("{{", "}}"):
        at = rest.find(token)
        if at >= 0:
            raise InputError(
                f"`body` has {token!r} outside a placeholder; placeholders look like "
                "{{first_name}} (letters, digits, _ . -, starting with a letter or _)",
                code="INVALID_TEMPLATE",
                field="body",
            )
    return variables(body)


def contact_values(
    phone: str,
    first_name: str | None = None,
    last_name: str | None = None,
    email: str | None = None,
    fields: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """What a contact fills in: its ``fields`` (non-empty ones), then its own attributes."""
    values = {k: str(v) for k, v in (fields or {}).items() if v is not None and str(v) != ""}
    name = " ".join(p for p in (first_name, last_name) if p)
    own = {
        "phone": phone,
        "first_name": first_name,
        "last_name": last_name,
        "email": email,
        "name": name or None,
    }
    values.update({k: v for k, v in own.items() if v})
    return values


@dataclass(frozen=True, slots=True)
class Template:
    """A body parsed once and rendered for many recipients."""

    body: str

    @property
    def variables(self) -> list[str]:
        return variables(self.body)

    def missing(self, values: Mapping[str, str], defaults: Mapping[str, str]) -> str | None:
        """The first variable neither ``values`` nor ``defaults`` has, or None."""
        for name in self.variables:
            if name not in values and name not in defaults:
                return name
        return None

    def render(
        self, values: Mapping[str, str], defaults: Mapping[str, str], *, phone: str | None = None
    ) -> str:
        """The text for one recipient: ``values`` (its contact) first, then ``defaults`` (the
        send's ``variables``). MissingVariable names the first placeholder with neither."""

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            found = values.get(name)
            if found is None:
                found = defaults.get(name)
            if found is None:
                raise MissingVariable(name, phone)
            return found

        return _PLACEHOLDER.sub(fill, self.body)
