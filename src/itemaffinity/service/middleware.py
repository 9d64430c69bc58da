"""One plain ASGI middleware: cached responses, request body size limit, per-route metrics.

Plain ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a copy per request.
A GET whose exact path and query string were answered before on the live snapshot (and whose item
has not changed online since) is answered from the response cache without routing or parameter
parsing: the hot path of `similar` and `bought-together`.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from fastapi import HTTPException

from itemaffinity.service.problems import problem_response
from itemaffinity.service.state import ServiceState

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(HTTPException):
    """A streamed request body grew past the limit (raised while the route reads it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit:,} bytes")


def route_label(scope: Scope) -> str:
    """The route template (`/v1/items/{item_id}`) that served the request, for metric labels."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return route.path
    path = scope.get("path", "")
    return "/ui/{file}" if path.startswith("/ui/") else "unmatched"


def cache_key(scope: Scope) -> bytes:
    """The response cache key of a request: raw path and query string (parameters sorted)."""
    qs = scope.get("query_string", b"")
    if b"&" in qs:
        qs = b"&".join(sorted(qs.split(b"&")))
    return (scope.get("raw_path") or scope["path"].encode()) + b"?" + qs


_CACHED_HEADERS = [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff"),
                   (b"x-cache", b"hit")]


class ServiceMiddleware:
    """Answer cached GETs, refuse bodies over `max_body` bytes (413), time every request.

    Args:
        app: the ASGI app to wrap.
        state: the service state (metrics, response cache, live snapshot).
        max_body: the largest request body accepted, in bytes.
    """

    def __init__(self, app: Callable, *, state: ServiceState, max_body: int) -> None:
        self.app, self.state, self.max_body = app, state, max_body
        self.metrics = state.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        if scope["method"] == "GET":
            entry = self.state.cache.lookup(cache_key(scope), self.state.current)
            if entry is not None:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*_CACHED_HEADERS, (b"content-length", str(len(entry.body)).encode())]})
                await send({"type": "http.response.body", "body": entry.body})
                self.metrics.observe(entry.route, "GET", 200, time.perf_counter() - start)
                return
        status = 500
        limit = self.max_body
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > limit:
                response = problem_response(413, f"request body larger than {limit:,} bytes",
                                            instance=scope.get("path"))
                await response(scope, receive, send)
                self.metrics.observe("unmatched", scope["method"], 413, time.perf_counter() - start)
                return
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-content-type-options", b"nosniff")]
            await send(message)

        try:
            await self.app(scope, receive_limited, send_wrapper)
        finally:
            self.metrics.observe(route_label(scope), scope["method"], status, time.perf_counter() - start)
