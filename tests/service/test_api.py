"""Read endpoints against a live server over a real Online Retail store."""

from __future__ import annotations

import csv
import io
import time

import httpx
import pytest

PROBLEM = "application/problem+json"


def ok(r: httpx.Response) -> dict:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def test_health_reports_snapshot_and_models(api, store):
    h = ok(api.get("/health"))
    assert h["status"] == "ok" and h["writable"] is True
    assert h["items"] == store.facts["n_items"] and h["baskets"] >= store.facts["n_baskets"]
    assert set(h["models"]) == {"popularity", "itemknn", "rules"}
    assert h["default_model"] == store.facts["leaderboard_best"]


def test_openapi_lists_every_endpoint(api):
    spec = ok(api.get("/openapi.json"))
    paths = spec["paths"]
    for p in ("/health", "/metrics", "/v1/items", "/v1/items/{item_id}", "/v1/items/{item_id}/similar",
              "/v1/items/{item_id}/bought-together", "/v1/baskets/complete", "/v1/users/{user_id}/recommendations",
              "/v1/recommendations", "/v1/rules", "/v1/segments", "/v1/evaluation", "/v1/events", "/v1/catalog",
              "/v1/admin/rebuild", "/v1/admin/jobs/{job_id}"):
        assert p in paths
    for write in (paths["/v1/events"]["post"], paths["/v1/catalog"]["post"]):  # either scheme, the same key
        assert write["security"] == [{"APIKeyHeader": []}, {"HTTPBearer": []}]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key" and schemes["HTTPBearer"]["scheme"] == "bearer"


def test_search_by_words_id_and_popularity(api, store):
    r = ok(api.get("/v1/items", params={"q": "heart holder", "limit": 10}))
    assert r["total"] >= 10 and len(r["items"]) == 10
    top = r["items"][0]
    assert "HEART" in top["title"] and "HOLDER" in top["title"]
    assert ok(api.get("/v1/items", params={"q": store.facts["top_item"]}))["items"][0]["item_id"] == store.facts["top_item"]
    best = ok(api.get("/v1/items", params={"limit": 5}))
    assert best["items"][0]["item_id"] == store.facts["top_item"]
    baskets = [i["baskets"] for i in best["items"]]
    assert baskets == sorted(baskets, reverse=True)
    page2 = ok(api.get("/v1/items", params={"q": "heart", "limit": 5, "offset": 5}))
    page1 = ok(api.get("/v1/items", params={"q": "heart", "limit": 10}))
    assert [i["item_id"] for i in page2["items"]] == [i["item_id"] for i in page1["items"][5:]]
    assert ok(api.get("/v1/items", params={"q": "zzqqxx-no-such-thing"}))["total"] == 0


def test_search_puts_the_closest_of_the_full_matches_first(api, store):
    """Of the many titles holding every word of the query, those closest in meaning come first (by the server's
    text search, TF-IDF here), and only then the best sellers: "salt" finds Salt before Salted Butter."""
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.service.search import load_semantic

    data = InteractionData.from_store(store.path)
    text = load_semantic(data, "tfidf")
    for q in ("heart holder", "cake stand", "lunch bag"):
        found = ok(api.get("/v1/items", params={"q": q, "limit": 5}))["items"]
        assert all(i["match"] == "title+semantic" and i["score"] == 1.0 for i in found), "full matches first"
        holds_every_word = lambda item: all(w in data.titles[data.items.index(item)] for w in q.upper().split())  # noqa: E731
        closest = [(-cos, -data.item_baskets[data.items.index(item)], item) for item, cos in text.search(q, 50)
                   if holds_every_word(item)]  # equally close (twin titles: 85118 and 21814): the best seller first
        assert [i["item_id"] for i in found] == [item for *_, item in sorted(closest)][:5], q


def test_item_record_has_statistics(api, store):
    item = ok(api.get(f"/v1/items/{store.facts['top_item']}"))
    assert item["stats"]["baskets"] == store.facts["top_item_baskets"]
    assert item["stats"]["users"] == store.facts["top_item_users"]
    assert item["stats"]["first_seen"] < item["stats"]["last_seen"]
    assert item["group"] and item["title"] and item["price"] > 0
    assert item["stats"]["popularity_rank"] == 1


def test_bought_together_follows_the_pair_statistics(api, store):
    top = store.facts["top_item"]
    r = ok(api.get(f"/v1/items/{top}/bought-together", params={"n": 10, "explain": "true"}))
    assert [i["item_id"] for i in r["items"]] == store.facts["pairs_top_item"]
    for i in r["items"]:
        ev = i["evidence"]
        assert ev["co_count"] == store.facts["pair_counts_top_item"][i["item_id"]]
        assert ev["lift"] > 1 and "baskets" in ev["reason"]
    assert r["bundles"] and all(top in [x["item_id"] for x in b["items"]] for b in r["bundles"])
    supports = [b["support"] for b in r["bundles"]]
    assert supports == sorted(supports, reverse=True)


def test_bought_together_lists_only_items_bought_together(api, store):
    """The pairs table also holds each item's text neighbours (for their complement / substitute relation), bought
    together or not: they are no bought-together partners, and the item's record does not count them."""
    lone = store.facts["lone_item"]
    assert ok(api.get(f"/v1/items/{lone}/bought-together", params={"n": 50}))["items"] == []
    assert ok(api.get(f"/v1/items/{lone}"))["partners"] == 0
    listed = ok(api.get(f"/v1/items/{store.facts['top_item']}/bought-together", params={"n": 100, "explain": "true"}))
    assert listed["items"] and min(i["evidence"]["co_count"] for i in listed["items"]) >= 2


def test_similar_items_from_models(api, store):
    top = store.facts["top_item"]
    r = ok(api.get(f"/v1/items/{top}/similar", params={"n": 5}))
    assert r["model"] == store.facts["leaderboard_best"]
    assert len(r["items"]) == 5 and top not in [i["item_id"] for i in r["items"]]
    scores = [i["score"] for i in r["items"]]
    assert scores == sorted(scores, reverse=True)
    r2 = ok(api.get(f"/v1/items/{top}/similar", params={"n": 5, "model": "rules", "explain": "true"}))
    assert r2["model"] == "rules" and all(i["evidence"]["reason"] for i in r2["items"])
    bad = api.get(f"/v1/items/{top}/similar", params={"model": "no-such-model"})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM


def test_business_filters_apply_to_every_list(api, store):
    top = store.facts["top_item"]
    base = ok(api.get(f"/v1/items/{top}/bought-together", params={"n": 10}))["items"]
    first = base[0]["item_id"]
    r = ok(api.get(f"/v1/items/{top}/bought-together", params={"n": 10, "exclude": first}))
    assert first not in [i["item_id"] for i in r["items"]]
    cheap = ok(api.get(f"/v1/items/{top}/similar", params={"n": 10, "max_price": 1.0}))["items"]
    assert cheap and all(i["price"] is not None and i["price"] <= 1.0 for i in cheap)
    dear = ok(api.post("/v1/baskets/complete", json={"items": [top], "n": 10, "min_price": 5}))["items"]
    assert dear and all(i["price"] >= 5 for i in dear)
    group = base[0]["group"]
    only = ok(api.get(f"/v1/items/{top}/similar", params={"n": 10, "category": group}))["items"]
    assert only and all(i["group"] == group for i in only)
    without = ok(api.get(f"/v1/items/{top}/similar", params={"n": 10, "exclude_category": group}))["items"]
    assert without and all(i["group"] != group for i in without)


def test_complete_a_basket_with_reasons(api, store):
    basket = [store.facts["top_item"], store.facts["pairs_top_item"][0], "NO-SUCH-ITEM"]
    r = ok(api.post("/v1/baskets/complete", json={"items": basket, "n": 8, "explain": True}))
    assert r["unknown_items"] == ["NO-SUCH-ITEM"] and r["history_size"] == 2
    got = [i["item_id"] for i in r["items"]]
    assert len(got) == 8 and not set(got) & set(basket)
    assert all(i["evidence"]["reason"] for i in r["items"])
    assert any(i["evidence"]["contributing"] for i in r["items"])


def test_customer_recommendations_skip_what_they_bought(api, store):
    user = store.facts["user_with_history"]
    r = ok(api.get(f"/v1/users/{user}/recommendations", params={"n": 10, "explain": "true"}))
    assert r["fallback"] is None and len(r["items"]) == 10
    assert r["user"]["segment"]["segment"] and r["user"]["items_bought"] > 10
    bought = {i["item_id"] for i in r["user"]["recent_items"]}
    assert not bought & {i["item_id"] for i in r["items"]}
    stranger = ok(api.get("/v1/users/never-seen-anyone/recommendations", params={"n": 3}))
    assert stranger["fallback"] == "popular" and stranger["items"][0]["item_id"] == store.facts["top_item"]


def test_recommendations_for_an_anonymous_history(api, store):
    history = store.facts["pairs_top_item"][:3]
    r = ok(api.post("/v1/recommendations", json={"history": history, "n": 5, "model": "itemknn"}))
    assert r["model"] == "itemknn" and len(r["items"]) == 5 and not set(history) & {i["item_id"] for i in r["items"]}


def test_rules_filter_sort_paginate_and_export(api, store):
    all_rules = ok(api.get("/v1/rules", params={"limit": 5}))
    assert all_rules["total"] == store.facts["rules"]
    strong = ok(api.get("/v1/rules", params={"min_lift": 20, "sort": "confidence", "limit": 100}))
    assert 0 < strong["total"] < all_rules["total"]
    assert all(r["lift"] >= 20 for r in strong["items"])
    conf = [r["confidence"] for r in strong["items"]]
    assert conf == sorted(conf, reverse=True)
    top = store.facts["top_item"]
    mine = ok(api.get("/v1/rules", params={"antecedent": top, "limit": 1000}))
    assert mine["total"] > 0 and all(top in [x["item_id"] for x in r["antecedent"]] for r in mine["items"])
    ending = ok(api.get("/v1/rules", params={"consequent": top, "limit": 1000}))
    either = ok(api.get("/v1/rules", params={"item": top, "limit": 1000}))  # a rule holds an item on one side
    assert ending["total"] > 0
    assert either["total"] == mine["total"] + ending["total"] == ok(api.get(f"/v1/items/{top}"))["rules"]
    assert sorted(map(str, either["items"])) == sorted(map(str, mine["items"] + ending["items"]))
    p2 = ok(api.get("/v1/rules", params={"limit": 3, "offset": 3}))["items"]
    p1 = ok(api.get("/v1/rules", params={"limit": 6}))["items"]
    assert p2 == p1[3:]
    exported = api.get("/v1/rules", params={"min_lift": 20, "format": "csv", "limit": 10000})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == strong["total"] and all(float(r["lift"]) >= 20 for r in rows)
    group = strong["items"][0]["consequent"][0]["group"]
    by_group = ok(api.get("/v1/rules", params={"category": group, "limit": 1000}))
    assert by_group["total"] > 0
    assert all(all(c["group"] == group for c in r["consequent"]) for r in by_group["items"])


def test_segments_evaluation_and_data_quality(api, store):
    seg = ok(api.get("/v1/segments", params={"limit": 5}))
    assert sum(s["users"] for s in seg["summary"]) == store.facts["segments_users"]
    champions = ok(api.get("/v1/segments", params={"segment": "Champions", "limit": 5}))
    assert champions["total"] > 0 and all(u["segment"] == "Champions" for u in champions["users"])
    ev = ok(api.get("/v1/evaluation"))
    assert {(r["task"], r["model"]) for r in ev["rows"]} == {
        *(("basket-completion", m) for m in ("popularity", "itemknn", "rules")),
        ("cold-start", "popularity"), ("cold-start", "tfidf")}
    assert ev["default_model"] == store.facts["leaderboard_best"]
    dq = ok(api.get("/v1/data-quality"))
    from_ingest = {r["reason"]: r["rows"] for r in dq["by_reason"]}
    for reason, n in store.facts["rejects"].items():
        assert from_ingest[reason] >= n
    ex = ok(api.get("/v1/data-quality/non_product_code"))
    assert ex["rows"] >= store.facts["rejects"]["non_product_code"] and ex["examples"]
    assert "POST" in str(ex["examples"]) or "raw" in ex["examples"][0]
    assert api.get("/v1/data-quality/no_such_reason").status_code == 404


def test_errors_are_problem_documents(api):
    for r, status in ((api.get("/v1/items/NO-SUCH-ITEM"), 404), (api.get("/v1/nowhere"), 404),
                      (api.get("/v1/items", params={"limit": 0}), 422), (api.delete("/v1/items"), 405),
                      (api.post("/v1/baskets/complete", json={"items": [], "n": 5}), 422),
                      (api.post("/v1/baskets/complete", json={"items": ["x"], "surprise": 1}), 422),
                      (api.post("/v1/baskets/complete", content=b"{not json", headers={"content-type": "application/json"}), 422)):
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == PROBLEM
        body = r.json()
        assert body["status"] == status and body["title"]


def test_bodies_over_the_limit_are_refused(writer):
    r = writer.post("/v1/events", content=b"x" * (5 * 1024 * 1024), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM


def test_cached_answers_equal_computed_ones(api, store):
    url = f"/v1/items/{store.facts['pairs_top_item'][3]}/similar?n=7&explain=true"
    first, second = api.get(url), api.get(url)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content and second.headers.get("x-cache") == "hit"


def test_metrics_count_requests_per_route(api, store):
    api.get(f"/v1/items/{store.facts['top_item']}/bought-together")
    text = api.get("/metrics").text
    assert 'itemaffinity_http_requests_total{route="/v1/items/{item_id}/bought-together",method="GET",status="200"' in text
    assert "itemaffinity_http_request_duration_seconds_bucket" in text
    assert "itemaffinity_snapshot_version" in text and "itemaffinity_events_ingested_total" in text


@pytest.mark.parametrize("path", ["/", "/ui/app.js", "/ui/cytoscape.min.js", "/ui/app.css"])
def test_web_ui_is_served_offline(api, path):
    r = api.get(path)
    assert r.status_code == 200 and len(r.content) > 500
    if path == "/":
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "http://" not in r.text and "https://" not in r.text


def test_precomputed_answers_equal_computed_ones(api, store):
    """The default model (rules) has no rule from the rare product: its similar items are the cold-start chain's,
    computed on first use and cached then, not a precomputed empty list (as the warm-up cached them before)."""
    deadline = time.monotonic() + 120
    while not api.get("/health").json()["precomputed"]:
        assert time.monotonic() < deadline, "precomputation did not finish"
        time.sleep(0.5)
    while api.get("/health").json()["semantic"] == "loading":  # the chain's answers are cached once it has loaded
        assert time.monotonic() < deadline, "the text search did not load"
        time.sleep(0.5)
    rare = store.facts["fresh_pairs"][5][0]  # a rare item no other test asks about
    for item, route in ((rare, "bought-together"), (store.facts["top_item"], "similar")):
        cached = api.get(f"/v1/items/{item}/{route}")
        assert cached.headers.get("x-cache") == "hit"
        computed = api.get(f"/v1/items/{item}/{route}", params={"n": 10, "explain": "false"})
        assert computed.headers.get("x-cache") is None
        assert cached.content == computed.content and cached.json()["items"]
    first = api.get(f"/v1/items/{rare}/similar")
    assert first.headers.get("x-cache") is None and first.json()["model"] == "rules"
    assert first.json()["fallback"] == "text" and len(first.json()["items"]) == 10
    again = api.get(f"/v1/items/{rare}/similar")
    assert again.headers.get("x-cache") == "hit" and again.content == first.content


@pytest.mark.parametrize("route", ["similar", "bought-together"])
def test_relation_filter_keeps_what_goes_with_or_replaces_the_product(api, store, route):
    """relation=complement ("goes with"), substitute ("instead of") or related keeps the items whose evidence names
    that relation, looking deeper into the ranking for them: every such item of the unfiltered top 50 is kept."""
    top = store.facts["top_item"]
    every = ok(api.get(f"/v1/items/{top}/{route}", params={"n": 50, "explain": "true"}))["items"]
    named = {i["evidence"]["relation"] for i in every}
    # The best seller's 50 strongest partners are all complements; its similar items are mixed.
    assert named == {"complement"} if route == "bought-together" else len(named) >= 2
    for relation in ("complement", "substitute", "related"):
        kept = ok(api.get(f"/v1/items/{top}/{route}", params={"n": 100, "explain": "true", "relation": relation}))
        kept = kept["items"]
        assert {i["evidence"]["relation"] for i in kept} <= {relation}
        assert kept or route == "bought-together", f"the model's ranking holds {relation}s within its top 2,000"
        assert {i["item_id"] for i in every if i["evidence"]["relation"] == relation} <= {i["item_id"] for i in kept}
        scores = [i["score"] for i in kept]
        assert scores == sorted(scores, reverse=True)
    assert api.get(f"/v1/items/{top}/{route}", params={"relation": "rival"}).status_code == 422


def test_pair_evidence_states_the_stored_text_similarity_and_relation(servers, store):
    """analyze stores each pair's text similarity (TF-IDF cosine) and relation, and the CLI shows them; the service
    states the same, also when it has no text search layer (the nokeys server runs without one)."""
    import duckdb

    with duckdb.connect(str(store.path), read_only=True) as con:
        item = con.execute("SELECT item_a FROM pairs WHERE n_ab >= 2 GROUP BY 1 HAVING count(DISTINCT relation) = 3 "
                           "ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()[0]
        stored = {b: (sim, rel) for b, sim, rel in con.execute(
            "SELECT item_b, text_similarity, relation FROM pairs WHERE item_a = ? AND n_ab >= 2", [item]).fetchall()}
    got = ok(httpx.get(f"{servers['nokeys'].url}/v1/items/{item}/bought-together",
                       params={"n": 100, "explain": "true"}))["items"]
    assert len(got) == min(len(stored), 100) and {i["evidence"]["relation"] for i in got} >= {"substitute"}
    for i in got:
        sim, relation = stored[i["item_id"]]
        assert i["evidence"]["relation"] == relation
        assert i["evidence"]["text_similarity"] == pytest.approx(sim, abs=1e-6)
