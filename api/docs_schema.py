"""JSON Schemas of an OpenAPI 3.1 document as readable HTML (the pieces api.docs lays out).

Everything taken from the document goes through ``esc``: a description, a name or an example
is data and never markup, whoever wrote the document.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import unquote

SCHEMA_PREFIX = "#/components/schemas/"
#: How deep fields nest on the page (expanded ``$ref``s and inline objects): a self-referencing
#: or absurdly deep schema still renders, as links past this depth.
MAX_DEPTH = 8
#: How deep a type label looks into ``anyOf``/``items`` before it says "…".
_LABEL_DEPTH = 12

_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_FACTS = (
    ("minLength", "min length"),
    ("maxLength", "max length"),
    ("minimum", "minimum"),
    ("exclusiveMinimum", "greater than"),
    ("maximum", "maximum"),
    ("exclusiveMaximum", "less than"),
    ("multipleOf", "multiple of"),
    ("minItems", "min items"),
    ("maxItems", "max items"),
    ("minProperties", "min keys"),
    ("maxProperties", "max keys"),
    ("pattern", "pattern"),
)
_FLAGS = (
    ("uniqueItems", "unique items"),
    ("readOnly", "read-only"),
    ("writeOnly", "write-only"),
    ("deprecated", "deprecated"),
)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def dumps(value: object, *, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def inline(text: object) -> str:
    """One line of CommonMark-ish text: escaped, with its `code` spans kept."""
    if not isinstance(text, str):
        return ""
    return _spans(text.strip()).replace("\n", " ")


def _spans(text: str) -> str:
    return _CODE_SPAN.sub(r"<code>\1</code>", esc(text))


def prose(text: object) -> str:
    """A description (CommonMark in OpenAPI): paragraphs, line breaks and `code` spans only.

    The text is escaped first and only our own tags are put around it, so no markup or link
    from the document survives.
    """
    if not isinstance(text, str) or not text.strip():
        return ""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    body = "".join(f"<p>{_spans(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return f'<div class="doc">{body}</div>'


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-") or "x"


class Anchors:
    """Unique ids for the page's sections, made of letters, digits, ``-`` and ``_`` only."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def new(self, prefix: str, text: str) -> str:
        base = f"{prefix}-{slug(text)}"
        anchor, n = base, 2
        while anchor in self._used:
            anchor, n = f"{base}-{n}", n + 1
        self._used.add(anchor)
        return anchor


def pointer(document: dict[str, Any], ref: str) -> Any:
    """The target of a local ``$ref`` (a JSON pointer such as ``#/components/schemas/X``)."""
    if not ref.startswith("#"):
        return None
    node: Any = document
    for token in ref[1:].split("/")[1:]:
        key = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node


def resolve(document: dict[str, Any], value: object) -> dict[str, Any]:
    """An object with its ``$ref`` chain followed (parameters, responses, bodies, examples)."""
    for _ in range(16):
        ref = as_dict(value).get("$ref")
        if not isinstance(ref, str):
            break
        target = pointer(document, ref)
        if not isinstance(target, dict):
            break
        value = target
    return as_dict(value)


def examples_of(document: dict[str, Any], owner: dict[str, Any]) -> list[tuple[str, Any]]:
    """(title, value) of every example an object carries: ``example``, or ``examples`` as a
    schema's list or as a media type's or parameter's map of Example objects."""
    found: list[tuple[str, Any]] = []
    if "example" in owner:
        found.append(("", owner["example"]))
    examples = owner.get("examples")
    if isinstance(examples, list):
        found.extend(("", value) for value in examples)
    for name, item in as_dict(examples).items():
        example = resolve(document, item)
        title = str(example.get("summary") or name)
        if "value" in example:
            found.append((title, example["value"]))
        elif isinstance(example.get("externalValue"), str):
            found.append((title, f"see {example['externalValue']}"))
    return found


def examples_html(found: list[tuple[str, Any]]) -> str:
    blocks = "".join(
        f'<p class="label">Example{": " + esc(title) if title else ""}</p>'
        f"<pre><code>{esc(dumps(value, indent=2))}</code></pre>"
        for title, value in found
    )
    return f'<div class="examples">{blocks}</div>' if blocks else ""


def facts(schema: dict[str, Any]) -> str:
    """The constraints of a schema in words: enum values, bounds, default, flags."""
    out: list[str] = []
    enum = as_list(schema.get("enum"))
    if enum:
        out.append("one of " + ", ".join(f"<code>{esc(dumps(v))}</code>" for v in enum))
    for key, words in _FACTS:
        if key in schema:
            out.append(f"{words} <code>{esc(dumps(schema[key]))}</code>")
    out.extend(words for key, words in _FLAGS if schema.get(key) is True)
    if schema.get("additionalProperties") is False:
        out.append("no other keys")
    if "default" in schema:
        out.append(f"default <code>{esc(dumps(schema['default']))}</code>")
    return f'<p class="facts">{" · ".join(out)}</p>' if out else ""


class SchemaRenderer:
    """Renders schemas; ``expand`` puts the fields of a ``$ref``'d schema in place (for an
    operation's body and answers), otherwise a ``$ref`` is a link (for the schema list)."""

    def __init__(
        self, document: dict[str, Any], schema_ids: dict[str, str], *, expand: bool
    ) -> None:
        self.document = document
        self.schema_ids = schema_ids
        self.expand = expand

    def block(self, schema: object) -> str:
        """A schema in full: its type, description, fields and examples."""
        own = as_dict(schema)
        target = self._target(own) or own
        description = own.get("description", target.get("description"))
        found = examples_of(self.document, own) or examples_of(self.document, target)
        return (
            f'<div class="schema"><p><span class="type">{self.label(own)}</span></p>'
            f"{prose(description)}{facts(own)}{self.children(own, ())}"
            f"{examples_html(found)}</div>"
        )

    def label(self, schema: object, depth: int = 0) -> str:
        """A short type: ``string (uuid)``, ``array of Message``, ``string | null``."""
        s = as_dict(schema)
        if depth > _LABEL_DEPTH:
            return "…"
        ref = s.get("$ref")
        if isinstance(ref, str):
            return self.ref_link(ref)
        if "const" in s:
            return f"<code>{esc(dumps(s['const']))}</code>"
        for key, sep in (("anyOf", " | "), ("oneOf", " | "), ("allOf", " &amp; ")):
            options = as_list(s.get(key))
            if options:
                return sep.join(self.label(option, depth + 1) for option in options)
        types = s.get("type")
        names = [t for t in (types if isinstance(types, list) else [types]) if isinstance(t, str)]
        if not names:
            names = ["object"] if "properties" in s else ["array"] if "items" in s else []
        if not names:
            return "enum" if "enum" in s else "any"
        return " | ".join(self._one_type(name, s, depth) for name in names)

    def _one_type(self, name: str, s: dict[str, Any], depth: int) -> str:
        if name == "array" and "items" in s:
            return f"array of {self.label(s['items'], depth + 1)}"
        extra = s.get("additionalProperties")
        if name == "object" and isinstance(extra, dict) and extra and not s.get("properties"):
            return f"map of string → {self.label(extra, depth + 1)}"
        fmt = s.get("format")
        return esc(name) + (f" ({esc(fmt)})" if isinstance(fmt, str) else "")

    def ref_link(self, ref: str) -> str:
        name = ref.removeprefix(SCHEMA_PREFIX).replace("~1", "/").replace("~0", "~")
        anchor = self.schema_ids.get(unquote(name)) if ref.startswith(SCHEMA_PREFIX) else None
        if anchor is None:
            return f"<code>{esc(ref)}</code>"
        return f'<a href="#{anchor}">{esc(unquote(name))}</a>'

    def _target(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        ref = schema.get("$ref")
        return as_dict(pointer(self.document, ref)) if isinstance(ref, str) else None

    def children(self, schema: object, stack: tuple[str, ...]) -> str:
        """The nested parts of a schema: fields, item fields, variants, other keys."""
        s = as_dict(schema)
        if len(stack) >= MAX_DEPTH:
            return ""
        ref = s.get("$ref")
        if isinstance(ref, str):
            if not self.expand or ref in stack:
                return ""
            return self.children(pointer(self.document, ref), (*stack, ref))
        deeper = (*stack, "")
        return (
            self._fields(s, deeper)
            + self._other_keys(s, deeper)
            + self._items(s, deeper)
            + self._variants(s, deeper)
        )

    def _fields(self, s: dict[str, Any], stack: tuple[str, ...]) -> str:
        properties = as_dict(s.get("properties"))
        if not properties:
            return ""
        required = {name for name in as_list(s.get("required")) if isinstance(name, str)}
        rows = "".join(
            self._field(str(name), as_dict(prop), name in required, stack)
            for name, prop in properties.items()
        )
        return f'<ul class="fields">{rows}</ul>'

    def _field(
        self, name: str, prop: dict[str, Any], required: bool, stack: tuple[str, ...]
    ) -> str:
        badge = ' <span class="badge required">required</span>' if required else ""
        found = examples_of(self.document, prop)
        if found and all(not isinstance(v, dict | list) for _, v in found):
            shown = ", ".join(f"<code>{esc(dumps(v))}</code>" for _, v in found)
            examples = f'<p class="facts">example {shown}</p>'
        else:
            examples = examples_html(found)
        return (
            f'<li><div class="field"><code class="name">{esc(name)}</code> '
            f'<span class="type">{self.label(prop)}</span>{badge}</div>'
            f"{prose(prop.get('description'))}{facts(prop)}{examples}"
            f"{self.children(prop, stack)}</li>"
        )

    def _other_keys(self, s: dict[str, Any], stack: tuple[str, ...]) -> str:
        extra = s.get("additionalProperties")
        if not isinstance(extra, dict) or not extra:
            return ""
        inner = self.children(extra, stack)
        if not inner and not s.get("properties"):
            return ""  # the label already says "map of string → …"
        return (
            f'<div class="extra"><p class="facts">Any other key: '
            f'<span class="type">{self.label(extra)}</span></p>{inner}</div>'
        )

    def _items(self, s: dict[str, Any], stack: tuple[str, ...]) -> str:
        items = s.get("items")
        if not isinstance(items, dict):
            return ""
        inner = self.children(items, stack)
        return f'<div class="items"><p class="facts">Each item:</p>{inner}</div>' if inner else ""

    def _variants(self, s: dict[str, Any], stack: tuple[str, ...]) -> str:
        html_parts: list[str] = []
        for key in ("anyOf", "oneOf", "allOf"):
            options = [as_dict(o) for o in as_list(s.get(key)) if as_dict(o).get("type") != "null"]
            inner = [(self.label(o), self.children(o, stack)) for o in options]
            if key == "allOf" or len(inner) == 1:
                html_parts.extend(nested for _, nested in inner)
            elif any(nested for _, nested in inner):
                items = "".join(
                    f'<li><span class="type">{label}</span>{nested}</li>' for label, nested in inner
                )
                html_parts.append(f'<p class="facts">One of:</p><ol class="variants">{items}</ol>')
        return "".join(html_parts)
