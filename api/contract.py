"""Declared endpoints: each route names its request, query and response models once.

From that one declaration the API validates input (``Content-Type`` checked, the body and the
query parsed by their pydantic models, errors turned into the one error shape), serializes the
answer, and builds the OpenAPI document (``api.openapi``). Handlers see validated models only:

    endpoints = Endpoints("messages")

    @endpoints.post("/v1/messages", body=SendRequest, response=SendAccepted, status=202, ...)
    async def send(request: web.Request) -> SendAccepted:
        send = body_of(request, SendRequest)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import hdrs, web
from pydantic import BaseModel, ValidationError

from api.context import validation_context
from api.errors import ApiError

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[BaseModel | web.StreamResponse]]

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
#: Error types of pydantic that mean the body as a whole is not a JSON object.
_WHOLE_BODY_ERRORS = frozenset({"json_invalid", "json_type", "model_type", "model_attributes_type"})

_BODY = web.RequestKey("body", BaseModel)
_QUERY = web.RequestKey("query", BaseModel)


@dataclass(frozen=True)
class Endpoint:
    """One route as customers see it: what it takes, what it answers, how it can fail."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    #: Statuses this route answers besides the ones every route of its kind can (see openapi).
    errors: frozenset[int] = frozenset()
    public: bool = False
    #: The media type of an answer that is not a model (metrics text, the docs page).
    media_type: str = JSON
    description: str = ""
    #: Other success statuses with the same response model (readiness answers 503 too).
    also: frozenset[int] = frozenset()
    hidden: bool = False
    #: Request headers the route reads: (name, description).
    header_params: tuple[tuple[str, str], ...] = ()
    #: The media type of a body the handler streams itself (CSV): checked here, not parsed.
    raw_body: str | None = None
    #: An example of that body, for the document.
    raw_example: str | None = None

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


@dataclass
class Endpoints:
    """The endpoints of one API module, registered on the app together."""

    tag: str
    items: list[Endpoint] = field(default_factory=list)

    def route(self, method: str, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            self.items.append(Endpoint(method, path, handler, tag=self.tag, **spec))
            return handler

        return declare

    def get(self, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **spec)

    def post(self, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **spec)

    def delete(self, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **spec)

    def patch(self, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **spec)


ENDPOINTS = web.AppKey("endpoints", list[Endpoint])


def register(app: web.Application, endpoints: Endpoints) -> None:
    app.setdefault(ENDPOINTS, [])
    for endpoint in endpoints.items:
        app[ENDPOINTS].append(endpoint)
        app.router.add_route(endpoint.method, endpoint.path, _serve(endpoint))


def body_of(request: web.Request, model: type[M]) -> M:
    value = request[_BODY]
    assert isinstance(value, model)
    return value


def query_of(request: web.Request, model: type[M]) -> M:
    value = request[_QUERY]
    assert isinstance(value, model)
    return value


def _serve(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        if endpoint.query is not None:
            request[_QUERY] = parse_query(request, endpoint.query)
        if endpoint.body is not None:
            request[_BODY] = await parse_body(request, endpoint.body)
        if endpoint.raw_body is not None:
            check_media_type(request, endpoint.raw_body)
        answer = await endpoint.handler(request)
        if isinstance(answer, web.StreamResponse):
            return answer
        return web.Response(
            body=answer.model_dump_json(by_alias=True).encode(),
            status=endpoint.status,
            content_type=JSON,
        )

    return serve


def parse_query(request: web.Request, model: type[M]) -> M:
    values = {name: request.query.getone(name) for name in request.query}
    try:
        return model.model_validate(values, context=validation_context(request))
    except ValidationError as exc:
        raise input_error(exc, model) from None


async def parse_body(request: web.Request, model: type[M]) -> M:
    """JSON or form-urlencoded into ``model``; any other media type is answered 415.

    A request without a Content-Type is read as JSON, as simple clients often omit it.
    """
    context = validation_context(request)
    media = request.content_type if hdrs.CONTENT_TYPE in request.headers else JSON
    try:
        if media == JSON or (media.startswith("application/") and media.endswith("+json")):
            return model.model_validate_json(await request.read(), context=context)
        if media == FORM:
            form = await request.post()
            values = {
                name: (items[0] if len(items) == 1 else items)
                for name in form
                for items in [form.getall(name)]
            }
            return model.model_validate(values, context=context)
    except ValidationError as exc:
        raise input_error(exc, model) from None
    raise ApiError(
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        f"send the request body as {JSON} or {FORM}, not {media}",
    )


def check_media_type(request: web.Request, media: str) -> None:
    """A body the handler reads itself must come as ``media`` (any charset), else 415."""
    given = request.content_type if hdrs.CONTENT_TYPE in request.headers else None
    if given != media:
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"send the request body as {media}, not {given or 'without a Content-Type'}",
        )


def _field(loc: tuple[int | str, ...]) -> str | None:
    return str(loc[0]) if loc and isinstance(loc[0], str) else None


def input_error(exc: ValidationError, model: type[BaseModel] | None = None) -> ApiError:
    """The first problem as the error, every problem in ``details``; codes stay stable.

    A validator of ours raises ``PydanticCustomError`` with an upper-case type, which is our
    machine code (INVALID_PHONE_NUMBER...); pydantic's own types become INVALID_INPUT. The
    offending values are not echoed back, except where a validator chose to (phone numbers).
    """
    problems = exc.errors(include_url=False, include_input=False)
    first = problems[0]
    kind = str(first["type"])
    field = _field(tuple(first["loc"]))
    if kind in _WHOLE_BODY_ERRORS and field is None:
        message = (
            "the request body must be a JSON object"
            if kind != "json_invalid"
            else "the request body is not valid JSON"
        )
        return ApiError(400, "INVALID_JSON", message)
    if kind.isupper():
        context = first.get("ctx") or {}
        details = context.get("details")
        return ApiError(
            400,
            kind,
            str(first["msg"]),
            field=field,
            details=details if isinstance(details, list) else None,
        )
    message = f"`{field}`: {first['msg']}" if field else str(first["msg"])
    # A model may name the code customers know for pydantic's own errors on a field:
    # "to:missing" → MISSING_RECIPIENT, or "to" for any error on it.
    codes: dict[str, str] = getattr(model, "error_codes", {})
    code = codes.get(f"{field}:{kind}") or codes.get(field or "") or "INVALID_INPUT"
    details = [{"field": _field(tuple(p["loc"])), "reason": p["msg"]} for p in problems]
    return ApiError(400, code, message, field=field, details=details if len(details) > 1 else None)
