"""POST /v1/admin/rebuild: a background rebuild on the store, progress, then an atomic swap."""

from __future__ import annotations

import time

import httpx
import pytest

from svc_support import API_KEY


@pytest.fixture(scope="module")
def admin(servers):
    with httpx.Client(base_url=servers["rebuild"].url, headers={"X-API-Key": API_KEY}, timeout=60) as c:
        yield c


def basket(a: str, b: str, tag: str, k: int) -> list[dict]:
    return [{"item_id": x, "basket_id": f"rb-{tag}-{i}", "user_id": f"rb-{tag}"} for i in range(k) for x in (a, b)]


def co_count(client: httpx.Client, a: str, b: str) -> int | None:
    items = client.get(f"/v1/items/{a}/bought-together", params={"n": 100, "explain": "true"}).json()["items"]
    return next((i["evidence"]["co_count"] for i in items if i["item_id"] == b), None)


def test_rebuild_includes_posted_events_and_refolds_later_ones(admin, store):
    (a, b), (c, d) = store.facts["fresh_pairs"][2:4]
    assert admin.post("/v1/events", json={"events": basket(a, b, "before", 3)}).json()["accepted"] == 6
    before = admin.get("/health").json()
    assert before["snapshot_version"] == 1 and before["events_since_snapshot"] == 6
    r = admin.post("/v1/admin/rebuild", json={"models": ["popularity"], "cluster": False})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running")
    again = admin.post("/v1/admin/rebuild", json={"models": ["popularity"]})
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    # Posted while the rebuild runs: either in its snapshot or folded again after the swap.
    assert admin.post("/v1/events", json={"events": basket(c, d, "during", 2)}).json()["accepted"] == 4
    reads, deadline = 0, time.monotonic() + 240
    while True:
        state = admin.get(f"/v1/admin/jobs/{job['id']}").json()
        # Reads keep working on the old snapshot during the rebuild.
        assert admin.get(f"/v1/items/{a}/bought-together").status_code == 200
        reads += 1
        if state["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert state["status"] == "succeeded", state
    assert state["progress"] == 1.0 and [s["message"] for s in state["steps"]][0] == "reading events"
    after = admin.get("/health").json()
    assert after["snapshot_version"] == 2
    assert co_count(admin, a, b) == 3  # now from the rebuilt pairs table: the events were stored
    assert co_count(admin, c, d) == 2
    assert admin.get(f"/v1/items/{a}").json()["stats"]["baskets_online"] == 0
    assert state["result"]["watermark"] >= 1 and state["result"]["models_fitted"] == ["popularity"]


def test_rebuild_rejects_unknown_models_and_jobs(admin):
    r = admin.post("/v1/admin/rebuild", json={"models": ["no-such-model"]})
    assert r.status_code == 422
    assert admin.get("/v1/admin/jobs/ffffffffffff").status_code == 404


def test_posted_products_are_validated_stored_and_answered_after_a_rebuild(admin, servers, store):
    """POST /v1/catalog: a new product before its first sale and a new price for a known one, validated like a
    catalog file. The new product is answered at once from its text (the cold-start chain, flagged), its partners
    from the baskets posted with it, and the next rebuild serves it (found by its title, answered by the refitted models; a model fitted before it still answers
    from its text)."""
    top = store.facts["top_item"]
    title = admin.get(f"/v1/items/{top}").json()["title"]
    products = [{"item_id": "NEW-CAT-1", "title": f"{title} QUOKKAWARE", "price": 4.5},
                {"title": "a product without an id"},
                {"item_id": "NEW-CAT-1", "title": "the same id again"},
                {"item_id": top, "price": 9.99}]
    assert httpx.post(f"{servers['rebuild'].url}/v1/catalog", json={"products": products}).status_code == 401
    r = admin.post("/v1/catalog", json={"products": products})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["received"], body["stored"], body["new_products"]) == (4, 2, 1)
    assert body["rejected"] == {"missing_item_id": 1, "duplicate_item": 1}
    assert [(x["row"], x["reason"]) for x in body["rejects"]] == [(2, "missing_item_id"), (3, "duplicate_item")]
    # Served at once, from its text, until the next snapshot takes it in.
    new = admin.get("/v1/items/NEW-CAT-1").json()
    assert (new["title"], new["price"], new["added_since_snapshot"], new["stats"]["popularity_rank"]) == (
        f"{title} QUOKKAWARE", 4.5, True, None)
    deadline = time.monotonic() + 240
    while admin.get("/health").json()["semantic"] == "loading":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    at_once = admin.get("/v1/items/NEW-CAT-1/similar", params={"n": 3, "explain": "true"}).json()
    assert at_once["fallback"] == "text" and at_once["model"] == "tfidf"
    assert at_once["items"][0]["item_id"] == top, "the product whose title it extends"
    assert at_once["items"][0]["evidence"]["relation"] == "substitute"
    assert at_once["items"][0]["evidence"]["reason"].startswith(
        f"{title} QUOKKAWARE was added to the catalog after the live snapshot and nothing was bought with it yet")
    assert "next rebuild" in at_once["note"]
    related = admin.get("/v1/items/NEW-CAT-1/similar", params={"n": 3, "relation": "related"}).json()["items"]
    assert top not in [i["item_id"] for i in related]
    together = admin.get("/v1/items/NEW-CAT-1/bought-together").json()
    assert together["items"] == [] and "after the live snapshot" in together["note"]
    sold = [{"item_id": i, "basket_id": f"quokka-{k}"} for k in range(2) for i in ("NEW-CAT-1", top)]
    assert admin.post("/v1/events", json={"events": sold}).json()["pending_rebuild"] == 2
    together = admin.get("/v1/items/NEW-CAT-1/bought-together", params={"explain": "true"}).json()
    assert [(i["item_id"], i["evidence"]["co_count"]) for i in together["items"]] == [(top, 2)], \
        "sold twice with the top item since it was posted: its partner before any rebuild"
    assert together["online_changes"] == 2 and admin.get("/v1/items/NEW-CAT-1").json()["stats"]["baskets"] == 2
    assert admin.get("/v1/items/NEVER-POSTED/similar").status_code == 404
    assert admin.get("/v1/items/NEW-CAT-1/similar", params={"model": "no-such-model"}).status_code == 422
    completed = admin.post("/v1/baskets/complete", json={"items": ["NEW-CAT-1"], "n": 3, "explain": True}).json()
    assert (completed["fallback"], completed["unknown_items"], completed["items"][0]["item_id"]) == (
        "text", ["NEW-CAT-1"], top), "a basket of a product posted since the snapshot: completed from its text"
    assert completed["items"][0]["evidence"]["reason"].startswith(
        "The items in this basket were added to the catalog after the live snapshot, so this is one of the products "
        "whose texts are most like theirs")
    found = admin.get("/v1/items", params={"q": "quokkaware", "limit": 2}).json()
    assert [(i["item_id"], i["match"]) for i in found["items"]] == [("NEW-CAT-1", "new product")]
    assert found["total"] == 1
    paged = admin.get("/v1/items", params={"q": title.split()[0], "limit": 1, "offset": 1}).json()
    assert paged["items"][0]["item_id"] != "NEW-CAT-1" and paged["total"] >= 2

    version = admin.get("/health").json()["snapshot_version"]
    job = admin.post("/v1/admin/rebuild", json={"models": ["popularity"], "cluster": False}).json()
    deadline = time.monotonic() + 240
    while (state := admin.get(f"/v1/admin/jobs/{job['id']}").json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    assert state["status"] == "succeeded", state
    assert admin.get("/health").json()["snapshot_version"] == version + 1
    item = admin.get("/v1/items/NEW-CAT-1").json()
    assert (item["title"], item["price"], item["stats"]["baskets"]) == (f"{title} QUOKKAWARE", 4.5, 2)
    assert admin.get(f"/v1/items/{top}").json()["price"] == 9.99
    found = admin.get("/v1/items", params={"q": "quokkaware"}).json()["items"]
    assert found and found[0]["item_id"] == "NEW-CAT-1"
    refitted = admin.get("/v1/items/NEW-CAT-1/similar", params={"model": "popularity", "n": 3}).json()
    assert len(refitted["items"]) == 3 and refitted.get("note") is None
    stale = admin.get("/v1/items/NEW-CAT-1/similar", params={"model": "itemknn", "n": 3}).json()
    assert "fitted before this product was added" in stale["note"] and stale["fallback"] == "text"
    assert stale["items"][0]["item_id"] == top and stale["model"] == "itemknn"
    assert not admin.get("/v1/items/NEW-CAT-1").json()["added_since_snapshot"]
