"""Template logic without I/O (broker.templates): which placeholders a body has, which bodies are
refused, and how a recipient's text is filled from its contact and the send's variables."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import InputError
from broker.templates import (
    NAME,
    MissingVariable,
    Template,
    check,
    contact_values,
    variables,
)

PHONE = "+14155552671"

#: Variable names as the parser reads them.
names = st.from_regex(rf"\A{NAME}\Z", fullmatch=True)
#: Text with no brace at all: it can neither open nor close a placeholder.
plain = st.text(st.characters(exclude_characters="{}"), max_size=20)
#: Spaces a writer may put inside the braces.
padding = st.sampled_from(["", " ", "  ", "\t", " \n "])


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """(body, literal parts, names in order of appearance, repeats included)."""
    used = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    order = draw(st.lists(st.sampled_from(used), min_size=0, max_size=8))
    parts = [draw(plain) for _ in range(len(order) + 1)]
    body = parts[0]
    for name, after in zip(order, parts[1:], strict=True):
        body += "{{" + draw(padding) + name + draw(padding) + "}}" + after
    return body, parts, order


# --- which variables a body has ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Hello", []),
        ("", []),
        ("Hi {{first_name}}", ["first_name"]),
        ("Hi {{ first_name }}, code {{code}}", ["first_name", "code"]),
        ("{{b}} {{a}} {{b}} {{a}}", ["b", "a"]),
        ("{{\tname\n}}", ["name"]),
        ("{{order.id}} {{due-date}} {{_x9}}", ["order.id", "due-date", "_x9"]),
        ("{{Name}} {{name}}", ["Name", "name"]),  # names are case-sensitive
        ("a {single} brace and {{x}}", ["x"]),
        ("{{{x}}}", ["x"]),  # a lone brace on each side stays text
        ("{{" + "a" * 64 + "}}", ["a" * 64]),
    ],
)
def test_variables_in_order_of_first_appearance_each_once(body: str, expected: list[str]) -> None:
    assert check(body) == expected
    assert variables(body) == expected
    assert Template(body).variables == expected


@pytest.mark.parametrize(
    "body",
    [
        "Hi {{first_name}",
        "Hi {first_name}}",
        "Hi {{",
        "}} bye",
        "{{1st}}",  # a name starts with a letter or _
        "{{first name}}",
        "{{}}",
        "{{ }}",
        "{{näme}}",
        "{{a}}{{",
        "{{" + "a" * 65 + "}}",  # names are at most 64 characters
        "{{x}}}} and {{y}}",
    ],
)
def test_a_brace_pair_outside_a_placeholder_is_refused(body: str) -> None:
    with pytest.raises(InputError) as caught:
        check(body)
    assert (caught.value.code, caught.value.field) == ("INVALID_TEMPLATE", "body")
    assert "placeholder" in caught.value.message


@settings(max_examples=300)
@given(bodies())
def test_check_finds_every_placeholder_once_in_order(
    built: tuple[str, list[str], list[str]],
) -> None:
    body, _, order = built
    assert check(body) == list(dict.fromkeys(order))


@settings(max_examples=200)
@given(plain, plain, st.sampled_from(["{{", "}}"]))
def test_a_stray_pair_anywhere_in_plain_text_is_refused(
    before: str, after: str, stray: str
) -> None:
    with pytest.raises(InputError) as caught:
        check(before + stray + after)
    assert caught.value.code == "INVALID_TEMPLATE"


# --- rendering -----------------------------------------------------------------------------


@settings(max_examples=200)
@given(plain, st.dictionaries(names, plain, max_size=3), st.dictionaries(names, plain, max_size=3))
def test_text_without_placeholders_renders_unchanged(
    body: str, values: dict[str, str], defaults: dict[str, str]
) -> None:
    assert check(body) == []
    assert Template(body).render(values, defaults) == body


@settings(max_examples=300)
@given(bodies(), st.data())
def test_every_placeholder_is_replaced_by_its_value(
    built: tuple[str, list[str], list[str]], data: st.DataObject
) -> None:
    body, parts, order = built
    given_values = {n: data.draw(plain, label=n) for n in dict.fromkeys(order)}
    # Each value comes from the contact or from the send's variables, at random.
    from_contact = {n: v for n, v in given_values.items() if data.draw(st.booleans())}
    from_send = {n: v for n, v in given_values.items() if n not in from_contact}
    text = Template(body).render(from_contact, from_send)
    expected = parts[0] + "".join(
        given_values[n] + p for n, p in zip(order, parts[1:], strict=True)
    )
    assert text == expected
    # Nothing that looks like a placeholder is left behind.
    assert "{{" not in text and "}}" not in text


@settings(max_examples=200)
@given(bodies(), st.data())
def test_contact_values_win_over_the_sends_variables(
    built: tuple[str, list[str], list[str]], data: st.DataObject
) -> None:
    body, _, order = built
    wanted = list(dict.fromkeys(order))
    contact = {n: "c-" + data.draw(plain) for n in wanted}
    send = {n: "s-" + data.draw(plain) for n in wanted}
    assert Template(body).render(contact, send) == Template(body).render(contact, {})
    for name in wanted:
        assert Template("{{" + name + "}}").render(contact, send) == contact[name]


@pytest.mark.parametrize(
    ("values", "defaults", "expected"),
    [
        ({"first_name": "Ann"}, {"first_name": "friend", "code": "42"}, "Hi Ann, code 42"),
        ({}, {"first_name": "friend", "code": "42"}, "Hi friend, code 42"),
        ({"first_name": "Ann", "code": "1"}, {"code": "42"}, "Hi Ann, code 1"),
        ({"first_name": ""}, {"first_name": "friend", "code": "7"}, "Hi , code 7"),
    ],
)
def test_render_table(values: dict[str, str], defaults: dict[str, str], expected: str) -> None:
    assert Template("Hi {{ first_name }}, code {{code}}").render(values, defaults) == expected


def test_values_are_inserted_as_text_never_read_as_placeholders() -> None:
    """A value holding braces (a customer's field, a variable) is not expanded again."""
    text = Template("{{a}} {{b}}").render({"a": "{{b}}"}, {"b": "B"})
    assert text == "{{b}} B"


@settings(max_examples=200)
@given(bodies(), st.data())
def test_a_missing_variable_is_named_first_in_order(
    built: tuple[str, list[str], list[str]], data: st.DataObject
) -> None:
    body, _, order = built
    wanted = list(dict.fromkeys(order))
    if not wanted:
        return
    gone = data.draw(st.sampled_from(wanted))
    given_values = {n: "v" for n in wanted if n != gone}
    first_missing = next(n for n in wanted if n not in given_values)
    template = Template(body)
    assert template.missing(given_values, {}) == first_missing == gone
    with pytest.raises(MissingVariable) as caught:
        template.render(given_values, {}, phone=PHONE)
    assert caught.value.name == gone
    assert (caught.value.code, caught.value.field) == ("MISSING_VARIABLE", "variables")
    assert caught.value.message.startswith(f"Missing variable: {gone} for {PHONE}")
    assert template.missing(given_values, {gone: "x"}) is None


def test_missing_variable_message_names_it_and_whom() -> None:
    with pytest.raises(MissingVariable, match=r"^Missing variable: code; give it in `variables`$"):
        Template("{{code}}").render({}, {})
    many = MissingVariable("code", PHONE, count=3)
    assert (
        many.message
        == f"Missing variable: code for 3 recipients, e.g. {PHONE}; give it in `variables`"
    )
    assert isinstance(many, InputError)


# --- what a contact fills in ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "name"),
    [
        ("Ann", "Lee", "Ann Lee"),
        ("Ann", None, "Ann"),
        (None, "Lee", "Lee"),
        ("Ann", "", "Ann"),
        (None, None, None),
    ],
)
def test_contact_name_is_first_and_last_together(
    first: str | None, last: str | None, name: str | None
) -> None:
    values = contact_values(PHONE, first, last)
    assert values.get("name") == name
    assert values["phone"] == PHONE
    assert values.get("first_name") == (first or None)
    assert values.get("last_name") == (last or None)


def test_contact_values_take_fields_and_own_attributes_over_fields() -> None:
    values = contact_values(
        PHONE,
        "Ann",
        None,
        "ann@example.com",
        {"city": "Oslo", "phone": "+10000000000", "empty": "", "none": None, "tier": 2},
    )
    assert values == {
        "city": "Oslo",
        "tier": "2",
        "phone": PHONE,  # the contact's own number, not a field of that name
        "first_name": "Ann",
        "email": "ann@example.com",
        "name": "Ann",
    }
    # A field may stand in for an attribute the contact lacks.
    assert contact_values(PHONE, fields={"last_name": "Lee"})["last_name"] == "Lee"


def test_a_contacts_values_render_a_personal_text() -> None:
    contact = contact_values(PHONE, "Ann", "Lee", fields={"order": "A-17"})
    template = Template("Hi {{name}} ({{first_name}}), order {{order}} to {{ phone }} by {{day}}")
    text = template.render(contact, {"day": "Monday", "name": "friend"})
    assert text == f"Hi Ann Lee (Ann), order A-17 to {PHONE} by Monday"


@settings(max_examples=200)
@given(
    st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z", fullmatch=True),
    st.none() | st.text(min_size=1, max_size=10),
    st.none() | st.text(min_size=1, max_size=10),
)
def test_contact_values_are_never_empty(phone: str, first: str | None, last: str | None) -> None:
    values = contact_values(phone, first, last)
    assert values["phone"] == phone
    assert all(v != "" for v in values.values())
    assert values.get("name") == (" ".join(p for p in (first, last) if p) or None)
