"""API routes, one module per area; `problems(...)` documents error responses in the OpenAPI."""

from __future__ import annotations

from typing import Any

from itemaffinity.service.schemas import ProblemOut

_DESCRIPTIONS = {400: "Body is not readable (not UTF-8 JSON)", 401: "API key missing or invalid", 403: "Writes disabled (no API key configured)",
                 404: "Unknown id", 409: "Conflict (read-only replica, or a job already running)",
                 413: "Request body too large", 422: "Invalid parameters", 503: "Snapshot not loaded yet"}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error codes answered with an RFC 7807 problem document."""
    schema = ProblemOut.model_json_schema()
    return {code: {"description": _DESCRIPTIONS.get(code, "Error"),
                   "content": {"application/problem+json": {"schema": schema}}} for code in (*codes, 503)}
