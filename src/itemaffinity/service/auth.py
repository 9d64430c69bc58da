"""API keys for writes and admin: `X-API-Key` (or `Authorization: Bearer`, for clients that only send that) must
match one of the configured keys.

- no key configured on the server: every write is refused with 403 (writes are disabled);
- key missing or not matching: 401.
Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from itemaffinity.service.problems import Problem

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="Needed for POST /v1/events, /v1/catalog and /v1/admin/*; set the server's "
                                          "keys with ITEMAFFINITY_API_KEYS (comma-separated).")
bearer = HTTPBearer(auto_error=False, description="The same key as a bearer token (Authorization: Bearer KEY).")


async def require_api_key(request: Request, header_key: Annotated[str | None, Security(api_key_header)],
                          token: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> str:
    """The caller's key, once it matches one of the server's keys."""
    key = header_key or (token.credentials if token else None)
    keys = request.app.state.service.settings.api_keys
    if not keys:
        raise Problem(403, "writes are disabled: the server has no API key configured "
                           "(set ITEMAFFINITY_API_KEYS and restart)", title="Writes disabled")
    if not key:
        raise Problem(401, "this endpoint needs an API key: an X-API-Key header (or Authorization: Bearer KEY)",
                      title="API key required",
                      headers={"WWW-Authenticate": "ApiKey"})
    given = key.encode()
    if not any(hmac.compare_digest(given, k.encode()) for k in keys):
        raise Problem(401, "the API key is not valid", title="Invalid API key", headers={"WWW-Authenticate": "ApiKey"})
    return key


ApiKey = Depends(require_api_key)
