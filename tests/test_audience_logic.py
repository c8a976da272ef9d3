"""The pure parts of group sends: message ids derived from the batch and the number, each
recipient's text (or why it has none), and one expansion page as the charge worker gets it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.audiences import BODY_TOO_LONG, MISSING_VARIABLE, GroupSend, Personalizer
from broker.ids import derived_id, issued_at, new_id
from broker.store.audiences import Expansion, Member
from broker.templates import MissingVariable, contact_values
from workers.charge import expand
from workers.expander import page_request

phones = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)


@given(phones, phones)
def test_derived_ids_are_stable_distinct_and_dated_like_their_batch(a: str, b: str) -> None:
    batch = new_id()
    first = derived_id(batch, a)
    assert derived_id(batch, a) == first, "the same recipient gets the same id again"
    assert first.version == 7 and first.variant == uuid.RFC_4122
    assert issued_at(first) == issued_at(batch)
    if a != b:
        assert derived_id(batch, b) != first
    assert derived_id(new_id(), a) != first


def _send(**kw: object) -> GroupSend:
    return GroupSend(accepted_at=datetime.now(UTC), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("template", "variables", "values", "made"),
    [
        ("Hi {{first_name}}", {}, {"first_name": "Ann"}, ("Hi Ann", None)),
        ("Hi {{first_name}}", {"first_name": "you"}, {"first_name": "Ann"}, ("Hi Ann", None)),
        ("Hi {{first_name}}", {"first_name": "you"}, {}, ("Hi you", None)),
        ("Code {{code}}", {}, {"first_name": "Ann"}, ("Code {{code}}", MISSING_VARIABLE)),
        ("{{x}}{{x}}", {"x": "é" * 9}, {}, ("{{x}}{{x}}", BODY_TOO_LONG)),
    ],
)
def test_each_recipient_gets_its_text_or_the_reason_it_has_none(
    template: str, variables: dict[str, str], values: dict[str, str], made: tuple[str, str | None]
) -> None:
    personal = Personalizer.of(_send(template=template, variables=variables, max_body_chars=17))
    assert personal.made("+14155552671", values) == made


def test_a_missing_variable_names_it_and_the_recipient() -> None:
    personal = Personalizer.of(_send(template="Code {{code}}"))
    with pytest.raises(MissingVariable) as err:
        personal.text("+14155552671", contact_values("+14155552671"))
    assert err.value.code == "MISSING_VARIABLE"
    assert "code" in err.value.message and "+14155552671" in err.value.message


def test_a_page_becomes_one_request_with_personal_texts_and_refusals() -> None:
    batch = new_id()
    job = Expansion(batch, uuid.uuid4(), "{}", [uuid.uuid4()], [], None, 0)
    send = _send(template="Hi {{first_name}}, {{offer}}", variables={"offer": "10% off"})
    members = [
        Member("+14155550001", contact_values("+14155550001", "Ann"), False),
        Member("+14155550002", contact_values("+14155550002"), False),
        Member("+14155550003", contact_values("+14155550003", "Cy"), True),
    ]
    request = page_request(job, send, Personalizer.of(send), members)
    assert request.batch_id == batch
    ids = [derived_id(batch, m.phone) for m in members]
    assert request.recipients == [(i, m.phone) for i, m in zip(ids, members, strict=True)]
    made = {m.to: m for m in expand(request)}
    assert made["+14155550001"].body == "Hi Ann, 10% off"
    assert made["+14155550001"].error is None
    assert made["+14155550002"].error is not None
    assert made["+14155550002"].error[0] == MISSING_VARIABLE
    assert made["+14155550003"].body == "Hi Cy, 10% off"
    assert made["+14155550003"].error is not None
    assert made["+14155550003"].error[0] == "OPTED_OUT"


def test_a_plain_group_text_is_not_repeated_per_recipient() -> None:
    job = Expansion(new_id(), uuid.uuid4(), "{}", [uuid.uuid4()], [], None, 0)
    send = _send(body="Store closes at 6")
    members = [Member(f"+1415555000{i}", {}, False) for i in range(3)]
    request = page_request(job, send, Personalizer.of(send), members)
    assert request.bodies == {} and request.body == "Store closes at 6"
    assert {m.body for m in expand(request)} == {"Store closes at 6"}
