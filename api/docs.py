"""The human-readable API reference at ``/docs``, rendered on the server from the OpenAPI document.

Gateways are self-hosted and often offline, so the page is one HTML document with its
stylesheet inlined from the package: no JavaScript, no CDN, no web fonts. Every string of the
document is escaped; the answer also forbids scripts (Content-Security-Policy) as a second guard.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from api.contract import Endpoints
from api.contract import register as register_endpoints
from api.docs_schema import (
    Anchors,
    SchemaRenderer,
    as_dict,
    as_list,
    esc,
    examples_html,
    examples_of,
    facts,
    inline,
    prose,
    resolve,
)
from api.openapi import document

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
UNTAGGED = "Other"
WEBHOOKS = "Webhooks"
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@functools.cache
def stylesheet() -> str:
    """The page's CSS, shipped as package data (api/static/docs.css)."""
    return resources.files("api").joinpath("static/docs.css").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]
    item: dict[str, Any]
    anchor: str
    tags: tuple[str, ...]


def render_docs(spec: dict[str, Any]) -> str:
    """A complete, self-contained HTML page documenting any OpenAPI 3.1 document."""
    return _Page(spec).html()


class _Page:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.anchors = Anchors()
        components = as_dict(spec.get("components"))
        self.schemas = as_dict(components.get("schemas"))
        self.schemes = as_dict(components.get("securitySchemes"))
        self.scheme_ids = {name: self.anchors.new("auth", name) for name in self.schemes}
        schema_ids = {name: self.anchors.new("schema", name) for name in self.schemas}
        self.expanded = SchemaRenderer(spec, schema_ids, expand=True)
        self.linked = SchemaRenderer(spec, schema_ids, expand=False)
        self.schema_ids = schema_ids
        self.operations = self._operations("paths", None)
        self.webhooks = self._operations("webhooks", WEBHOOKS)
        self.tag_ids = {tag: self.anchors.new("tag", tag) for tag in self._tags()}

    def _operations(self, source: str, tag: str | None) -> list[Operation]:
        found: list[Operation] = []
        for path, value in as_dict(self.spec.get(source)).items():
            item = resolve(self.spec, value)
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                tags = (tag,) if tag else tuple(str(t) for t in as_list(op.get("tags")) if t)
                name = op.get("operationId") or f"{method}-{path}"
                anchor = self.anchors.new("op", str(name))
                found.append(Operation(method, str(path), op, item, anchor, tags or (UNTAGGED,)))
        return found

    def _tags(self) -> list[str]:
        """Declared tags in their order, then any other tag an operation uses."""
        declared = [str(as_dict(t).get("name")) for t in as_list(self.spec.get("tags"))]
        used = [str(tag) for op in self.operations for tag in op.tags]
        return [t for t in dict.fromkeys([*declared, *used]) if t in used]

    def html(self) -> str:
        info = as_dict(self.spec.get("info"))
        title = str(info.get("title") or "API")
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)} — API reference</title><style>{stylesheet()}</style></head>"
            f'<body>{self._toc(title)}<main id="top">{self._intro(title, info)}{self._auth()}'
            f"{''.join(self._group(tag) for tag in self.tag_ids)}{self._webhooks()}"
            f"{self._schemas()}</main></body></html>"
        )

    # ---- navigation and introduction

    def _toc(self, title: str) -> str:
        parts = [
            '<nav class="toc" id="toc" aria-label="Contents">'
            f'<h2><a href="#top">{esc(title)}</a></h2>'
        ]
        if self.schemes:
            parts.append('<ul><li><a href="#authentication">Authentication</a></li></ul>')
        for tag, anchor in self.tag_ids.items():
            ops = [op for op in self.operations if tag in op.tags]
            parts.append(f'<h3><a href="#{anchor}">{esc(tag)}</a></h3>{_op_links(ops)}')
        if self.webhooks:
            parts.append(f'<h3><a href="#webhooks">{WEBHOOKS}</a></h3>{_op_links(self.webhooks)}')
        if self.schemas:
            links = "".join(
                f'<li><a href="#{anchor}">{esc(name)}</a></li>'
                for name, anchor in self.schema_ids.items()
            )
            parts.append(f'<h3><a href="#schemas">Schemas</a></h3><ul>{links}</ul>')
        parts.append("</nav>")
        return "".join(parts)

    def _intro(self, title: str, info: dict[str, Any]) -> str:
        version = f"version {esc(info['version'])} · " if "version" in info else ""
        servers = "".join(
            f"<li><code>{esc(s.get('url', ''))}</code> {inline(s.get('description'))}</li>"
            for s in map(as_dict, as_list(self.spec.get("servers")))
        )
        contact = as_dict(info.get("contact"))
        licence = as_dict(info.get("license"))
        people = " · ".join(
            esc(v)
            for v in (contact.get("name"), contact.get("email"), contact.get("url"))
            if isinstance(v, str)
        )
        return (
            f'<header class="intro"><h1>{esc(title)}</h1>'
            f'<p class="version">{version}OpenAPI {esc(self.spec.get("openapi", "?"))}</p>'
            f"{prose(info.get('summary'))}{prose(info.get('description'))}"
            f"{f'<p>Base URL:</p><ul>{servers}</ul>' if servers else ''}"
            f"{f'<p>Contact: {people}</p>' if people else ''}"
            f"{_licence(licence)}</header>"
        )

    def _auth(self) -> str:
        if not self.schemes:
            return ""
        rows = "".join(
            f'<tr id="{self.scheme_ids[name]}"><td><code>{esc(name)}</code></td>'
            f"<td>{esc(as_dict(scheme).get('type', ''))}</td><td>{_how(as_dict(scheme))}</td>"
            f"<td>{prose(as_dict(scheme).get('description'))}</td></tr>"
            for name, scheme in self.schemes.items()
        )
        return (
            '<section class="group" id="authentication"><h2>Authentication</h2>'
            "<table><thead><tr><th>Scheme</th><th>Type</th><th>How to send it</th>"
            f"<th>Description</th></tr></thead><tbody>{rows}</tbody></table></section>"
        )

    # ---- operations

    def _group(self, tag: str) -> str:
        declared = next(
            (as_dict(t) for t in as_list(self.spec.get("tags")) if as_dict(t).get("name") == tag),
            {},
        )
        ops = "".join(self._operation(op) for op in self.operations if op.tags[0] == tag)
        return (
            f'<section class="group" id="{self.tag_ids[tag]}"><h2>{esc(tag)}</h2>'
            f"{prose(declared.get('description'))}{ops}</section>"
        )

    def _webhooks(self) -> str:
        if not self.webhooks:
            return ""
        ops = "".join(self._operation(op) for op in self.webhooks)
        intro = "<p>Requests this API sends to your endpoints.</p>"
        return f'<section class="group" id="webhooks"><h2>{WEBHOOKS}</h2>{intro}{ops}</section>'

    def _operation(self, op: Operation) -> str:
        spec = op.spec
        summary = spec.get("summary", op.item.get("summary"))
        description = spec.get("description", op.item.get("description"))
        deprecated = (
            ' <span class="badge deprecated-badge">deprecated</span>'
            if spec.get("deprecated") is True
            else ""
        )
        shown: set[str] = set()  # schemas already expanded in this operation
        lead = f'<p class="summary">{inline(summary)}</p>' if summary else ""
        return (
            f'<article class="operation" id="{op.anchor}"><h3>{_method(op.method)} '
            f'<code class="path">{esc(op.path)}</code>{deprecated}</h3>'
            f"{lead}{prose(description)}"
            f"{self._security(spec)}{self._parameters(op)}{self._request_body(spec, shown)}"
            f"{self._responses(spec, shown)}</article>"
        )

    def _security(self, spec: dict[str, Any]) -> str:
        requirements = spec.get("security", self.spec.get("security"))
        if not isinstance(requirements, list):
            return ""
        options = [
            " + ".join(self._scheme_link(str(name)) for name in as_dict(r)) or "none"
            for r in requirements
        ]
        if not options:
            return '<p class="auth">Public: no credentials needed.</p>'
        return f'<p class="auth">Authentication: {" or ".join(options)}</p>'

    def _scheme_link(self, name: str) -> str:
        anchor = self.scheme_ids.get(name)
        return f'<a href="#{anchor}">{esc(name)}</a>' if anchor else f"<code>{esc(name)}</code>"

    def _parameters(self, op: Operation) -> str:
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*as_list(op.item.get("parameters")), *as_list(op.spec.get("parameters"))]:
            param = resolve(self.spec, raw)
            merged[(str(param.get("name")), str(param.get("in")))] = param
        if not merged:
            return ""
        rows = "".join(self._parameter(p) for p in merged.values())
        return (
            "<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Required</th>"
            f"<th>Type</th><th>Description</th></tr></thead><tbody>{rows}</tbody></table>"
        )

    def _parameter(self, param: dict[str, Any]) -> str:
        schema = param.get("schema")
        if schema is None:
            media = [as_dict(m) for m in as_dict(param.get("content")).values()]
            schema = media[0].get("schema") if media else None
        schema = as_dict(schema)
        required = '<span class="badge required">required</span>' if param.get("required") else ""
        found = examples_of(self.spec, param) or examples_of(self.spec, schema)
        return (
            f"<tr><td><code>{esc(param.get('name', ''))}</code></td>"
            f"<td>{esc(param.get('in', ''))}</td><td>{required}</td>"
            f'<td><span class="type">{self.expanded.label(schema)}</span></td>'
            f"<td>{prose(param.get('description'))}{facts(schema)}{examples_html(found)}</td></tr>"
        )

    def _request_body(self, spec: dict[str, Any], shown: set[str]) -> str:
        body = resolve(self.spec, spec.get("requestBody"))
        if not body:
            return ""
        need = "required" if body.get("required") is True else "optional"
        return (
            f'<h4>Request body <span class="facts">({need})</span></h4>'
            f"{prose(body.get('description'))}{self._content(body, shown)}"
        )

    def _responses(self, spec: dict[str, Any], shown: set[str]) -> str:
        responses = as_dict(spec.get("responses"))
        if not responses:
            return ""
        parts = ["<h4>Responses</h4>"]
        for status in sorted(responses, key=_status_order):
            answer = resolve(self.spec, responses[status])
            parts.append(
                f'<div class="response"><h5><span class="status s{esc(str(status)[:1])}">'
                f"{esc(status)}</span> {inline(answer.get('description'))}</h5>"
                f"{_headers(self.spec, self.expanded, answer)}{self._content(answer, shown)}</div>"
            )
        return "".join(parts)

    def _content(self, owner: dict[str, Any], shown: set[str]) -> str:
        """Each media type's schema and examples; types sharing a schema are shown once, and a
        schema already expanded in this operation is a link the second time."""
        groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for media_type, value in as_dict(owner.get("content")).items():
            media = as_dict(value)
            key = json.dumps(media.get("schema"), sort_keys=True, default=str)
            groups.setdefault(key, []).append((str(media_type), media))
        parts: list[str] = []
        for members in groups.values():
            names = ", ".join(f"<code>{esc(name)}</code>" for name, _ in members)
            schema = members[0][1].get("schema")
            examples = [e for _, media in members for e in examples_of(self.spec, media)]
            parts.append(f'<p class="media">{names}</p>{self._schema(schema, shown)}')
            parts.append(examples_html(examples))
        return "".join(parts)

    def _schema(self, schema: object, shown: set[str]) -> str:
        if schema is None:
            return ""
        ref = as_dict(schema).get("$ref")
        if not isinstance(ref, str):
            return self.expanded.block(schema)
        renderer = self.linked if ref in shown else self.expanded
        shown.add(ref)
        return renderer.block(schema)

    # ---- components

    def _schemas(self) -> str:
        if not self.schemas:
            return ""
        items = "".join(
            f'<article class="component" id="{self.schema_ids[name]}"><h3>{esc(name)}</h3>'
            f"{self.linked.block(schema)}</article>"
            for name, schema in self.schemas.items()
        )
        return f'<section class="group" id="schemas"><h2>Schemas</h2>{items}</section>'


def _method(method: str) -> str:
    return f'<span class="method {esc(method)}">{esc(method.upper())}</span>'


def _op_links(ops: list[Operation]) -> str:
    links = "".join(
        f'<li><a href="#{op.anchor}" title="{esc(op.spec.get("summary", ""))}">'
        f"{_method(op.method)} <code>{esc(op.path)}</code></a></li>"
        for op in ops
    )
    return f"<ul>{links}</ul>"


def _status_order(status: object) -> tuple[int, str]:
    text = str(status)
    return (1, text) if text == "default" else (0, text)


def _headers(spec: dict[str, Any], renderer: SchemaRenderer, answer: dict[str, Any]) -> str:
    headers = as_dict(answer.get("headers"))
    if not headers:
        return ""
    rows = ""
    for name, value in headers.items():
        header = resolve(spec, value)
        rows += (
            f"<tr><td><code>{esc(name)}</code></td>"
            f'<td><span class="type">{renderer.label(header.get("schema"))}</span></td>'
            f"<td>{prose(header.get('description'))}</td></tr>"
        )
    return (
        "<table><thead><tr><th>Header</th><th>Type</th><th>Description</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _how(scheme: dict[str, Any]) -> str:
    """Where a security scheme's credential goes, in words."""
    kind = scheme.get("type")
    if kind == "http":
        name = str(scheme.get("scheme", "")).capitalize()
        fmt = f" ({esc(scheme['bearerFormat'])})" if "bearerFormat" in scheme else ""
        return f"<code>Authorization: {esc(name)} …</code>{fmt}"
    if kind == "apiKey":
        return f"{esc(scheme.get('in', ''))} <code>{esc(scheme.get('name', ''))}</code>"
    if kind == "oauth2":
        flows = as_dict(scheme.get("flows"))
        return "OAuth 2 flows: " + ", ".join(esc(flow) for flow in flows)
    if kind == "openIdConnect":
        return f"OpenID Connect: <code>{esc(scheme.get('openIdConnectUrl', ''))}</code>"
    if kind == "mutualTLS":
        return "a TLS client certificate"
    return ""


def _licence(licence: dict[str, Any]) -> str:
    name = licence.get("name")
    return f"<p>License: {esc(name)}</p>" if isinstance(name, str) else ""


# ---- the route


@dataclass
class _Rendered:
    html: str | None = None


_PAGE = web.AppKey("docs_page", _Rendered)
endpoints = Endpoints("docs")


@endpoints.get(
    "/docs",
    public=True,
    media_type="text/html",
    summary="This API's reference, as a page for people",
)
async def docs_page(request: web.Request) -> web.Response:
    """The page is rendered once per app: its document does not change while it runs."""
    page = request.config_dict[_PAGE]
    if page.html is None:
        page.html = render_docs(document(request.app))
    return web.Response(text=page.html, content_type="text/html", charset="utf-8", headers=_HEADERS)


def register(app: web.Application) -> None:
    """Serve ``GET /docs`` (public: PUBLIC_PATHS in api.auth lists it)."""
    app[_PAGE] = _Rendered()
    register_endpoints(app, endpoints)
