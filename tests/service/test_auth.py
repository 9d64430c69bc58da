"""Writes and admin need a valid X-API-Key (or the same key as a bearer token): 401 without or with a wrong one,
403 when the server has no key configured; nothing is written either way."""

from __future__ import annotations

import httpx
import pytest

from svc_support import API_KEY

WRITES = [
    ("POST", "/v1/events", {"events": [{"item_id": "85123A", "basket_id": "auth-1"}]}),
    ("POST", "/v1/catalog", {"products": [{"item_id": "AUTH-NEW", "title": "never stored"}]}),
    ("POST", "/v1/admin/rebuild", {"models": ["popularity"], "cluster": False}),
    ("GET", "/v1/admin/jobs/0123456789ab", None),
]


def call(url: str, method: str, path: str, body, key: str | None) -> httpx.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    return httpx.request(method, url + path, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("method,path,body", WRITES)
@pytest.mark.parametrize("key", [None, "", "wrong-key", API_KEY + "x", API_KEY[:-1]])
def test_missing_or_wrong_key_is_401(servers, method, path, body, key):
    r = call(servers["main"].url, method, path, body, key)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == "ApiKey"


@pytest.mark.parametrize("method,path,body", WRITES)
@pytest.mark.parametrize("key", [None, API_KEY, "anything"])
def test_no_key_configured_refuses_every_write_with_403(servers, method, path, body, key):
    r = call(servers["nokeys"].url, method, path, body, key)
    assert r.status_code == 403, r.text
    assert "no API key configured" in r.json()["detail"]


def test_refused_writes_leave_no_trace(servers):
    url = servers["main"].url
    before = httpx.get(url + "/health").json()["events_since_snapshot"]
    for key in (None, "wrong-key"):
        call(url, "POST", "/v1/events", WRITES[0][2], key)
    assert httpx.get(url + "/health").json()["events_since_snapshot"] == before
    metrics = httpx.get(url + "/metrics").text
    assert 'route="/v1/events",method="POST",status="401"' in metrics


def test_reads_need_no_key_and_replicas_serve_them(servers):
    r = httpx.get(servers["nokeys"].url + "/v1/items/85123A/bought-together", params={"n": 3})
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    assert httpx.get(servers["nokeys"].url + "/health").json()["writable"] is False


def test_a_valid_key_is_accepted(servers):
    r = call(servers["main"].url, "GET", "/v1/admin/jobs/0123456789ab", None, API_KEY)
    assert r.status_code == 404  # authorised; the job just does not exist


def test_the_key_as_a_bearer_token(servers):
    """Clients that only send `Authorization: Bearer` are served the same: the key works, a wrong token is 401."""
    url = servers["main"].url + "/v1/admin/jobs/0123456789ab"
    assert httpx.get(url, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 404  # authorised
    wrong = httpx.get(url, headers={"Authorization": "Bearer wrong-key"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "the API key is not valid"
