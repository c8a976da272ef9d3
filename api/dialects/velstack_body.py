"""Velstack request bodies as its customers send them.

Velstack's document shows every body as ``-d '{ sender : "Velstack", recipient: "0205550368" }'``:
an object with unquoted names, posted by curl with its default form content type. Customers
copy that, so such a body is read as the object it means (JSON with bare names allowed),
whatever its Content-Type says; any other body (JSON, a form) as api.dialects.base reads it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from api.dialects.base import params
from api.errors import ApiError

_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_DECODER = json.JSONDecoder()


def _refused() -> ApiError:
    return ApiError(400, "INVALID_JSON", "the request body is not a valid JSON object")


def object_literal(text: str) -> dict[str, Any]:
    """``{name: value, "name": value, ...}``: names bare or quoted, values JSON, a trailing comma
    allowed. ApiError 400 INVALID_JSON otherwise."""
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if isinstance(found, dict):
        return found
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        raise _refused()
    pos += 1
    result: dict[str, Any] = {}
    while True:
        pos = _skip(text, pos)
        if text.startswith("}", pos):
            pos += 1
            break
        name, pos = _name(text, pos)
        pos = _skip(text, pos)
        if not text.startswith(":", pos):
            raise _refused()
        pos = _skip(text, pos + 1)
        try:
            result[name], pos = _DECODER.raw_decode(text, pos)
        except ValueError:
            raise _refused() from None
        pos = _skip(text, pos)
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith("}", pos):
            raise _refused()
    if text[pos:].strip():
        raise _refused()
    return result


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _name(text: str, pos: int) -> tuple[str, int]:
    if text.startswith('"', pos):
        try:
            name, end = _DECODER.raw_decode(text, pos)
        except ValueError:
            raise _refused() from None
        return str(name), end
    bare = _NAME.match(text, pos)
    if bare is None:
        raise _refused()
    return bare.group(), bare.end()


async def velstack_params(request: web.Request) -> dict[str, Any]:
    """The query string, then the body: an object (strict or as Velstack writes it), a form
    or JSON."""
    if request.method in ("GET", "HEAD") or not request.body_exists:
        return dict(request.query)
    if request.content_type == "multipart/form-data":
        return await params(request)
    raw = await request.read()  # kept by aiohttp: params() below reads it again
    if not raw.lstrip().startswith(b"{"):
        return await params(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refused() from None
    return {**request.query, **object_literal(text)}
