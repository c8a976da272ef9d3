"""The /docs page: any OpenAPI 3.1 document rendered readably and safely, and the real app's
page, opened in headless Chromium, lists every route of the app's own document."""

from __future__ import annotations

import asyncio
import copy
import tomllib
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from api.docs import render_docs, stylesheet
from api.server import start_api
from broker.config import Settings

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = '</title><script>alert(1)</script><img src=x onerror="alert(2)">" onmouseover="alert(3)'
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def sample_spec() -> dict[str, Any]:
    """A small shop API using what real documents use: tags, $refs (schemas, parameters,
    responses, examples), nested objects, arrays, enums, 3.1 type lists, examples, a
    self-referencing schema, a webhook, and a hostile string in every kind of text."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shop API",
            "version": "2.4.1",
            "description": 'Orders and customers.\n\nErrors use `{"error": ...}`.',
        },
        "servers": [{"url": "https://shop.example/api", "description": "production"}],
        "tags": [
            {"name": "orders", "description": "Everything about orders."},
            {"name": "customers"},
            {"name": "unused"},
        ],
        "security": [{"bearer": []}],
        "paths": {
            "/orders": {
                "get": {
                    "operationId": "listOrders",
                    "tags": ["orders"],
                    "summary": "List orders",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "description": "Page size.",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                            "example": 20,
                        },
                        {"$ref": "#/components/parameters/Status"},
                    ],
                    "responses": {
                        "200": {
                            "description": "A page of orders",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "data": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Order"},
                                            },
                                            "next_cursor": {"type": ["string", "null"]},
                                        },
                                        "required": ["data"],
                                    }
                                }
                            },
                        },
                        "401": {"$ref": "#/components/responses/Unauthorized"},
                    },
                },
                "post": {
                    "operationId": "createOrder",
                    "tags": ["orders"],
                    "summary": "Place an order",
                    "description": "Charges the card on file.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/OrderCreate"},
                                "examples": {
                                    "small": {
                                        "summary": "One item",
                                        "value": {"items": [{"sku": "A-1", "quantity": 2}]},
                                    },
                                    "shared": {"$ref": "#/components/examples/Big"},
                                },
                            },
                            "application/x-www-form-urlencoded": {
                                "schema": {"$ref": "#/components/schemas/OrderCreate"}
                            },
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Created",
                            "headers": {
                                "Location": {
                                    "description": "The new order",
                                    "schema": {"type": "string", "format": "uri"},
                                }
                            },
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Order"}
                                }
                            },
                        },
                        "default": {
                            "description": "Any error",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"},
                                    "example": {"error": {"code": "NOPE"}},
                                }
                            },
                        },
                        "400": {
                            "description": "Bad input",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        },
                    },
                },
            },
            "/orders/{id}": {
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "delete": {
                    "operationId": "cancelOrder",
                    "tags": ["orders", "customers"],
                    "summary": "Cancel an order",
                    "deprecated": True,
                    "responses": {"204": {"description": "Canceled"}},
                },
            },
            "/health": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {"200": {"description": "Alive"}},
                }
            },
            "/categories": {
                "get": {
                    "operationId": "tree",
                    "tags": ["customers"],
                    "summary": "The category tree",
                    "responses": {
                        "200": {
                            "description": "Root node",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Node"}
                                }
                            },
                        }
                    },
                }
            },
            "/evil/{x}": {
                "get": {
                    "operationId": HOSTILE,
                    "tags": [HOSTILE],
                    "summary": HOSTILE,
                    "description": f"{HOSTILE}\n\n[click](javascript:alert(4))",
                    "parameters": [
                        {
                            "name": HOSTILE,
                            "in": "query",
                            "description": HOSTILE,
                            "schema": {"type": "string", "enum": [HOSTILE], "default": HOSTILE},
                            "example": HOSTILE,
                        }
                    ],
                    "responses": {
                        HOSTILE: {
                            "description": HOSTILE,
                            "content": {
                                HOSTILE: {
                                    "schema": {"$ref": f"#/components/schemas/{HOSTILE}"},
                                    "example": {HOSTILE: HOSTILE},
                                }
                            },
                        }
                    },
                }
            },
        },
        "webhooks": {
            "orderShipped": {
                "post": {
                    "summary": "Sent when an order ships",
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Order"}}
                        }
                    },
                    "responses": {"200": {"description": "Acknowledged"}},
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key"},
                "header": {"type": "apiKey", "in": "header", "name": "X-Key"},
                "evil": {"type": "apiKey", "in": "query", "name": HOSTILE, "description": HOSTILE},
            },
            "parameters": {
                "Status": {
                    "name": "status",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "enum": ["pending", "paid", "shipped"]},
                }
            },
            "responses": {"Unauthorized": {"description": "No valid key"}},
            "examples": {"Big": {"summary": "Many items", "value": {"items": [{"sku": "B-9"}]}}},
            "schemas": {
                "Order": {
                    "type": "object",
                    "description": "An order as stored.",
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "status": {"type": "string", "enum": ["pending", "paid", "shipped"]},
                        "customer": {"$ref": "#/components/schemas/Customer"},
                        "lines": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/OrderLine"},
                        },
                        "shipping": {
                            "type": "object",
                            "description": "Where it goes.",
                            "properties": {
                                "city": {"type": "string"},
                                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                            },
                            "required": ["city"],
                        },
                        "notes": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                    },
                    "required": ["id", "status", "customer"],
                    "examples": [{"id": "0b5d7e9a-0000-4000-8000-000000000000", "status": "paid"}],
                },
                "OrderCreate": {
                    "type": "object",
                    "properties": {
                        "items": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/components/schemas/OrderLine"},
                        },
                        "coupon": {"type": "string", "examples": ["SPRING"]},
                    },
                    "required": ["items"],
                },
                "OrderLine": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string", "description": "Stock keeping unit"},
                        "quantity": {"type": "integer", "minimum": 1, "default": 1},
                    },
                    "required": ["sku"],
                },
                "Customer": {
                    "type": "object",
                    "properties": {
                        "email": {"type": "string", "format": "email"},
                        "tier": {"const": "gold"},
                    },
                    "required": ["email"],
                },
                "Node": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "children": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Node"},
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "object", "additionalProperties": True}},
                },
                HOSTILE: {"type": "object", "description": HOSTILE, "title": HOSTILE},
            },
        },
    }


class Dom(HTMLParser):
    """Every element (tag, attributes) and the text inside each element that has an id."""

    VOID = frozenset({"meta", "br", "img", "link", "input", "hr", "col", "area", "base", "wbr"})
    #: Elements that start a new line or cell on screen: their text is kept apart.
    BLOCKS = frozenset(
        {"p", "div", "li", "ul", "ol", "td", "th", "tr", "table", "pre", "br", "section"}
        | {"article", "nav", "header", "h1", "h2", "h3", "h4", "h5", "h6"}
    )

    def __init__(self, page: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.texts: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag in self.BLOCKS:
            self.handle_data(" ")
        if tag in self.VOID:
            return
        anchor = attributes.get("id")
        if anchor is not None:
            assert anchor not in self.texts, f"duplicate id {anchor!r}"
            self.texts[anchor] = ""
        self._open.append((tag, anchor))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self.handle_data(" ")
        while self._open:
            opened, _ = self._open.pop()
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, anchor in self._open:
            if anchor is not None:
                self.texts[anchor] += data

    def text(self, anchor: str) -> str:
        return " ".join(self.texts[anchor].split())

    def operations(self) -> set[str]:
        """``METHOD /path`` of every operation heading on the page."""
        return {
            " ".join(self.texts[a["id"] or ""].split()[:2])
            for tag, a in self.elements
            if tag == "article" and a.get("class") == "operation"
        }


@pytest.fixture(scope="module")
def page() -> Dom:
    return Dom(render_docs(sample_spec()))


# (section id, what its text must say): the page as a reader sees it.
SECTIONS = [
    ("top", ["Shop API", "version 2.4.1 · OpenAPI 3.1.0", "Orders and customers."]),
    ("top", ['Errors use {"error": ...}.', "https://shop.example/api production"]),
    ("authentication", ["bearer http Authorization: Bearer … An API key"]),
    ("authentication", ["header apiKey header X-Key"]),
    ("tag-orders", ["Everything about orders.", "GET /orders", "POST /orders"]),
    ("op-listOrders", ["List orders", "Authentication: bearer"]),
    ("op-listOrders", ["limit query integer Page size. minimum 1 · maximum 100 Example 20"]),
    ("op-listOrders", ['status query required string one of "pending", "paid", "shipped"']),
    ("op-listOrders", ["200 A page of orders", "data array of Order required"]),
    ("op-listOrders", ["next_cursor string | null", "401 No valid key"]),
    # the $ref'd items of an array are expanded, with their own $refs
    ("op-listOrders", ["Each item: id string (uuid) required status string required"]),
    ("op-listOrders", ['customer Customer required email string (email) required tier "gold"']),
    ("op-createOrder", ["Place an order", "Charges the card on file.", "Request body (required)"]),
    ("op-createOrder", ["application/json, application/x-www-form-urlencoded OrderCreate"]),
    ("op-createOrder", ["items array of OrderLine required min items 1"]),
    ("op-createOrder", ["sku string required Stock keeping unit quantity integer"]),
    ("op-createOrder", ["minimum 1 · default 1", 'coupon string example "SPRING"']),
    ("op-createOrder", ['Example: One item { "items": [ { "sku": "A-1", "quantity": 2 } ] }']),
    ("op-createOrder", ['Example: Many items { "items": [ { "sku": "B-9" } ] }']),
    ("op-createOrder", ["201 Created Header Type Description Location string (uri) The new order"]),
    ("op-createOrder", ["shipping object Where it goes. city string required zip string"]),
    ("op-createOrder", ['pattern "^[0-9]{5}$"', "notes string | null default null"]),
    ("op-createOrder", ['Example { "id": "0b5d7e9a-0000-4000-8000-000000000000"']),
    ("op-createOrder", ["default Any error application/json Error", '{ "error": { "code": "NOPE"']),
    # path-level parameters apply to the operation; a deprecated one says so
    ("op-cancelOrder", ["DELETE /orders/{id} deprecated", "id path required string (uuid)"]),
    ("op-cancelOrder", ["204 Canceled"]),
    ("op-get-health", ["Public: no credentials needed."]),
    ("webhooks", ["POST orderShipped", "Sent when an order ships", "lines array of OrderLine"]),
    ("schemas", ["Order", "An order as stored.", "OrderCreate", "OrderLine", "Customer"]),
    ("schema-Error", ["error object"]),
]


@pytest.mark.parametrize(("anchor", "expected"), SECTIONS)
def test_section_says(page: Dom, anchor: str, expected: list[str]) -> None:
    text = page.text(anchor)
    for words in expected:
        assert words in text, f"{words!r} not in #{anchor}: {text[:2000]}"


def test_every_operation_is_listed_in_the_contents_and_documented(page: Dom) -> None:
    spec = sample_spec()
    documented = {
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented <= page.operations()
    toc = page.text("toc")
    assert all(op in toc for op in documented if "evil" not in op)
    # grouped by tag: an operation with two tags is listed under both, documented once
    assert page.text("tag-customers").count("Cancel an order") == 0
    assert toc.count("DELETE /orders/{id}") == 2


def test_schema_links_resolve_to_anchors_on_the_page(page: Dom) -> None:
    hrefs = [a["href"] for tag, a in page.elements if tag == "a" and a.get("href")]
    assert hrefs and all(h is not None and h.startswith("#") for h in hrefs)
    assert {h[1:] for h in hrefs if h} <= set(page.texts)  # no dangling link
    assert "#schema-Order" in hrefs and "#auth-bearer" in hrefs


def test_self_referencing_schema_renders_once_per_level_then_links(page: Dom) -> None:
    text = page.text("op-tree")
    assert "children array of Node" in text
    assert text.count("children") == 1  # Node is not expanded again inside itself


def test_a_schema_shown_twice_in_one_operation_is_expanded_once(page: Dom) -> None:
    text = page.text("op-createOrder")
    assert text.count("Error") >= 2
    assert text.count("error object") == 1


def test_hostile_text_comes_out_as_text_never_markup() -> None:
    html = render_docs(sample_spec())
    dom = Dom(html)
    tags = {tag for tag, _ in dom.elements}
    assert not tags & {"script", "img", "iframe", "object", "embed", "link", "form", "base"}
    attributes = {name for _, attrs in dom.elements for name in attrs}
    assert not {name for name in attributes if name.startswith("on")}
    hrefs = [attrs.get("href") or "" for _, attrs in dom.elements]
    assert not [h for h in hrefs if "javascript" in h.lower()]
    assert html.count("<title>") == 1 and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # every place the hostile string went still shows it, as text
    assert sum(HOSTILE in text for text in dom.texts.values()) >= 5
    ids = [attrs["id"] for _, attrs in dom.elements if "id" in attrs]
    assert all(i is not None and i.replace("-", "").replace("_", "").isalnum() for i in ids)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"openapi": "3.1.0", "info": "not an object", "paths": [], "components": None},
        {"paths": {"/x": {"get": "no", "post": {"tags": "no", "responses": []}}}},
        {"paths": {"/x": {"$ref": "#/nowhere"}}, "components": {"schemas": {"A": 5, "B": True}}},
        {"paths": {"/y": {"get": {"parameters": [{"$ref": "#/components/parameters/Gone"}]}}}},
        {"paths": {"/z": {"get": {"tags": [7, None]}}}, "tags": [{"name": 7}, "x"]},
    ],
)
def test_a_malformed_document_still_renders_a_page(spec: dict[str, Any]) -> None:
    html = render_docs(copy.deepcopy(spec))
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>")
    dom = Dom(html)
    paths = spec.get("paths")
    operations = {
        f"{method.upper()} {path}"
        for path, item in (paths if isinstance(paths, dict) else {}).items()
        if isinstance(item, dict)
        for method, op in item.items()
        if isinstance(op, dict)
    }
    assert operations <= dom.operations()


def test_the_document_is_not_changed_by_rendering() -> None:
    spec = sample_spec()
    render_docs(spec)
    assert spec == sample_spec()


def test_stylesheet_ships_in_the_package_and_is_inlined() -> None:
    css = (ROOT / "api" / "static" / "docs.css").read_text(encoding="utf-8")
    assert stylesheet() == css and "nav.toc" in css
    html = render_docs(sample_spec())
    assert f"<style>{css}</style>" in html
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "static/*.css" in pyproject["tool"]["setuptools"]["package-data"]["api"]
    # nothing fetched from elsewhere: no stylesheet, script, font or image by URL
    assert "url(" not in css and "@import" not in css
    assert not [a for _, a in Dom(html).elements if a.get("src")]


# ---- the real app, in a real browser


@pytest.fixture(scope="module")
async def app_url(settings: Settings) -> AsyncIterator[str]:
    runner = await start_api(settings, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def dump_dom(url: str, profile: Path) -> str:
    """The DOM of ``url`` after Chromium loaded it (headless, no network beyond the page)."""
    assert CHROMIUM.exists(), "Chromium is missing: `make install` installs Debian's chromium"
    proc = await asyncio.create_subprocess_exec(
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_chromium_shows_every_route_of_the_apps_document(
    app_url: str, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{app_url}/openapi.json") as resp:
            assert resp.status == 200
            spec = await resp.json()
        async with http.get(f"{app_url}/docs") as resp:  # public: no API key
            assert resp.status == 200
            assert resp.content_type == "text/html" and resp.charset == "utf-8"
            assert "script-src" not in resp.headers["Content-Security-Policy"]
            assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    routes = {
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }
    assert len(routes) >= 10  # the app's own routes, not an empty document

    dom = Dom(await dump_dom(f"{app_url}/docs", tmp_path / "profile"))
    assert routes <= dom.operations(), routes - dom.operations()
    toc = dom.text("toc")
    assert all(route in toc for route in routes)
    assert spec["info"]["title"] in dom.text("top")
    assert set(spec["components"]["securitySchemes"]) <= set(dom.text("authentication").split())
