"""The merchandiser web UI in headless Chromium: search, product page with reasons, rules explorer
filters and export, association network, and the other pages rendering real data."""

from __future__ import annotations

import csv
import io
import re
import time

import httpx
from playwright.sync_api import expect


def test_search_then_product_page_shows_complements_with_reasons(page, shots):
    page.goto("/")
    page.fill("#search-input", "white hanging heart")
    page.click("#search-button")
    page.wait_for_selector("[data-testid=search-result]")
    rows = page.locator("[data-testid=search-result]")
    assert rows.count() >= 10
    assert "HEART" in rows.first.inner_text()
    page.screenshot(path=str(shots / "01-search.png"), full_page=True)
    title = rows.first.locator("a.product-link").inner_text()
    rows.first.locator("a.product-link").click()
    page.wait_for_selector("#product-title")
    assert page.inner_text("#product-title") == title
    page.wait_for_selector("[data-testid=complement]")
    complements = page.locator("[data-testid=complement]")
    assert complements.count() >= 5
    reason = complements.first.locator("[data-testid=reason]").inner_text()
    assert re.search(r"Bought together in [\d,]+ baskets?: \d+% of baskets with .+ as often as chance", reason)
    page.wait_for_selector("[data-testid=substitute]")
    assert page.locator("[data-testid=substitute] [data-testid=reason]").first.inner_text().startswith("The ")
    page.wait_for_selector("[data-testid=bundle]")
    assert "baskets" in page.locator("[data-testid=bundle]").first.inner_text()
    page.screenshot(path=str(shots / "02-product.png"), full_page=True)


def test_product_filters_limit_the_suggestions(page):
    page.goto("/#/item/85123A?max_price=1")
    page.wait_for_selector("[data-testid=complement]")
    prices = [float(t) for t in page.locator("[data-testid=complement] .chip").all_inner_texts()
              if re.fullmatch(r"\d+\.\d\d", t)]
    assert prices and max(prices) <= 1.0


def test_similar_products_can_show_only_substitutes_or_complements(page, server):
    # A best seller that the served model finds substitutes for (alike, not bought together more than chance).
    best = httpx.get(server.url + "/v1/items", params={"limit": 30}).json()["items"]
    item = next(i["item_id"] for i in best if httpx.get(
        f"{server.url}/v1/items/{i['item_id']}/similar", params={"relation": "substitute", "n": 1}).json()["items"])
    page.goto(f"/#/item/{item}")
    page.wait_for_selector("#similar [data-testid=substitute]")
    for relation in ("substitute", "complement"):
        page.select_option("#relation-select", relation)
        expect(page.locator("#similar [data-testid=substitute] .chip.tag", has_text=relation).first).to_be_visible()
        shown = page.locator("#similar [data-testid=substitute]").all_inner_texts()
        assert shown and all(relation in text for text in shown)


def test_rules_explorer_filters_sorts_and_exports(page, server, shots):
    page.goto("/#/rules")
    page.wait_for_selector("[data-testid=rule-row]")
    before = page.inner_text("#rules-count")
    total_all = int(before.split()[0].replace(",", ""))
    page.fill("#rules-min-lift", "30")
    page.select_option("#rules-sort", "confidence")
    page.click("#rules-apply")
    expect(page.locator("#rules-count")).not_to_have_text(before)
    assert int(page.inner_text("#rules-count").split()[0].replace(",", "")) < total_all
    lifts = [float(x) for x in page.locator("[data-testid=rule-lift]").all_inner_texts()]
    assert lifts and min(lifts) >= 30
    confidences = [float(x.rstrip("%")) for x in page.locator("[data-testid=rule-row] td:nth-child(4)").all_inner_texts()]
    assert confidences == sorted(confidences, reverse=True)
    shown = int(page.inner_text("#rules-count").split()[0].replace(",", ""))
    page.screenshot(path=str(shots / "03-rules.png"), full_page=True)
    href = page.get_attribute("#rules-export", "href")
    assert "format=csv" in href and "min_lift=30" in href
    exported = list(csv.DictReader(io.StringIO(httpx.get(server.url + href).text)))
    assert len(exported) == shown and all(float(r["lift"]) >= 30 for r in exported)


def test_product_page_opens_the_rules_with_the_product_on_either_side(page, server):
    page.goto("/#/item/85123A")
    page.click("#open-rules")
    page.wait_for_selector("[data-testid=rule-row]")
    assert page.input_value("#rules-item") == "85123A"
    total = httpx.get(server.url + "/v1/rules", params={"item": "85123A", "limit": 1}).json()["total"]
    starting = httpx.get(server.url + "/v1/rules", params={"antecedent": "85123A", "limit": 1}).json()["total"]
    assert int(page.inner_text("#rules-count").split()[0].replace(",", "")) == total > starting
    rows = page.locator("[data-testid=rule-row]").all_inner_texts()
    assert rows and all("85123A" in row for row in rows)


def test_network_renders_the_product_and_its_neighbours(page, shots):
    page.goto("/#/item/85123A")
    page.click("#open-network")
    page.wait_for_selector("#network-canvas[data-testid=network-ready]", timeout=30_000)
    nodes = int(page.get_attribute("#network-canvas", "data-nodes"))
    edges = int(page.get_attribute("#network-canvas", "data-edges"))
    assert nodes == 13 and edges >= nodes - 1  # the product, 12 neighbours, at least a star
    assert page.locator("#network-canvas canvas").count() >= 1
    box = page.locator("#network-canvas").bounding_box()
    assert box["width"] > 400 and box["height"] > 400
    page.screenshot(path=str(shots / "04-network.png"), full_page=True)


def test_leaderboard_customers_and_data_quality_pages(page, shots):
    page.goto("/#/evaluation")
    page.wait_for_selector("#leaderboard svg rect")
    assert page.locator("#leaderboard svg").count() >= 4
    basket, cold = (page.locator(f"#leaderboard .card:has(h2:text-is('{t}'))") for t in ("basket-completion", "cold-start"))
    assert "★" in basket.inner_text() and "default model" in basket.locator("p.hint").first.inner_text()
    assert basket.locator("p.hint").first.inner_text().startswith("a product held out of each test basket")
    # the default model is not among the text models scored on new products: that card does not name it
    assert "★" not in cold.inner_text() and "default model" not in cold.locator("p.hint").first.inner_text()
    intervals = page.locator("#leaderboard td.vs-best").all_inner_texts()  # the leader first, then the others
    assert intervals[0] == "1.000 (1.000–1.000)" and all("–" in t for t in intervals)
    # basket completion splits NDCG@10 by the held-out product's popularity; new products have none to split by
    thirds = basket.locator("td.by-popularity").all_inner_texts()
    assert thirds and all(len([float(v) for v in t.split(" · ")]) == 3 for t in thirds)
    assert "more than" in basket.locator("p.hint").last.inner_text()
    assert cold.locator("td.by-popularity").count() == 0 and cold.locator("tbody tr").count() >= 2
    page.screenshot(path=str(shots / "05-leaderboard.png"), full_page=True)
    page.goto("/#/customers?segment=Champions")
    page.wait_for_selector("#segment-users table a")
    page.locator("#segment-users table a").first.click()
    page.wait_for_selector("[data-testid=customer-rec]")
    assert "Bought together with items in their history" in page.inner_text("#customer-recs")
    page.screenshot(path=str(shots / "06-customer.png"), full_page=True)
    page.goto("/#/quality/non_product_code")
    page.wait_for_selector("[data-testid=reject-reason]")
    reasons = page.locator("[data-testid=reject-reason]").all_inner_texts()
    assert any("non_product_code" in r for r in reasons) and any("duplicate_line" in r for r in reasons)
    page.wait_for_selector("#quality-examples table")
    assert "POST" in page.inner_text("#quality-examples") or "StockCode" in page.inner_text("#quality-examples")
    page.screenshot(path=str(shots / "07-data-quality.png"), full_page=True)


def test_empty_states_explain_what_to_do(page):
    page.goto("/#/search?q=zzqqxx")
    page.wait_for_selector("#search-results .empty")
    assert "No product matches" in page.inner_text("#search-results")
    page.goto("/#/item/NO-SUCH-ITEM")
    page.wait_for_selector("#product-head .error")
    assert "unknown item" in page.inner_text("#product-head")
    page.goto("/#/customer/NO-SUCH-CUSTOMER")  # the model's fallback: said, not passed off as its suggestions
    page.wait_for_selector("[data-testid=customer-rec]")
    assert "This customer id has no purchases in the data; showing best sellers." in page.inner_text("#customer-head")
    assert "No history to go on, so these are best sellers." in page.inner_text("#customer-recs")


def test_api_documentation_is_served_offline(page, shots):
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/items/{item_id}/bought-together" in p for p in paths)
    page.screenshot(path=str(shots / "08-api-docs.png"))


def test_a_product_newer_than_the_model_says_so(browser, e2e_store, tmp_path):
    """A product posted to the catalog: at once its page, marked new, with the cold-start chain's items (its
    look-alikes by the snapshot's TF-IDF: no text search on this server) and why; once a rebuild that refits only
    popularity serves it, a model fitted before it says so, and how to include it, above its look-alikes."""
    from svc_support import API_KEY, Server, running

    late = Server(e2e_store.copy(tmp_path / "late"))
    with running(late), httpx.Client(base_url=late.url, headers={"X-API-Key": API_KEY}, timeout=60) as api:
        posted = api.post("/v1/catalog", json={"products": [{"item_id": "LATE-1", "title": "LATE ARRIVAL LANTERN"}]})
        assert posted.status_code == 200 and posted.json()["new_products"] == 1, posted.text
        context = browser.new_context(viewport={"width": 1300, "height": 1000}, base_url=late.url)
        page = context.new_page()
        page.goto("/#/item/LATE-1")  # before any rebuild: its page, marked new, with look-alikes instead
        page.wait_for_selector("#product-title")
        assert page.inner_text("#product-title") == "LATE ARRIVAL LANTERN"
        expect(page.locator("#new-product")).to_contain_text("added since the last rebuild")
        expect(page.get_by_test_id("similar-note")).to_contain_text(
            "This product was added to the catalog after the live snapshot and nothing was bought with it yet; shown "
            "instead: the products whose texts are most like its text")
        expect(page.get_by_test_id("substitute").first).to_contain_text("LANTERN")
        expect(page.locator("#complements")).to_contain_text("No product is bought with this one often enough yet")
        top = e2e_store.facts["top_item"]
        sold = [{"item_id": i, "basket_id": f"late-{k}"} for k in range(2) for i in ("LATE-1", top)]
        assert api.post("/v1/events", json={"events": sold}).json()["pending_rebuild"] == 2
        page.reload()  # sold twice with the best seller: its partner at once, with the reason
        complement = page.get_by_test_id("complement")
        expect(complement).to_have_count(1)
        expect(complement.locator(".chip").first).to_have_text("2 shared baskets")
        expect(complement.get_by_test_id("reason")).to_contain_text(
            "Bought together in 2 baskets: 100% of baskets with LATE ARRIVAL LANTERN (LATE-1) also have ")
        context.close()
        job = api.post("/v1/admin/rebuild", json={"models": ["popularity"], "cluster": False}).json()
        for _ in range(480):
            if api.get(f"/v1/admin/jobs/{job['id']}").json()["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.5)
        assert api.get(f"/v1/admin/jobs/{job['id']}").json()["status"] == "succeeded"
        context = browser.new_context(viewport={"width": 1300, "height": 1000}, base_url=late.url)
        page = context.new_page()
        page.goto("/#/item/LATE-1")
        page.wait_for_selector("#product-title")
        assert page.inner_text("#product-title") == "LATE ARRIVAL LANTERN"
        page.select_option("#model-select", "itemknn")
        expect(page.get_by_test_id("similar-note")).to_contain_text(
            "The itemknn model was fitted before this product was added (a refit includes it: POST "
            "/v1/admin/rebuild on the service, or itemaffinity analyze); shown instead: the products whose texts are "
            "most like its text.")
        expect(page.get_by_test_id("substitute").first).to_contain_text("LANTERN")
        expect(page.locator("#new-product")).to_have_count(0)
        context.close()


def test_a_store_without_orders_counts_customers(browser, tmp_path, cli, shared_file):
    """Amazon Beauty's reviews have no orders: the pages say customers where a shop's orders say baskets, a best
    seller's page shows its shared customers, and the status line counts customers."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from svc_support import Server, running

    t = pq.read_table(shared_file("amazon_beauty", "interactions.parquet"))
    pq.write_table(t.filter(pc.less(t["user_id"], 3001)), tmp_path / "reviews.parquet")
    store = tmp_path / "beauty.duckdb"
    res = cli("ingest", tmp_path / "reviews.parquet", "--preset", "amazon-beauty", "--catalog",
              shared_file("amazon_beauty", "items.parquet"), "--store", store)
    assert res.returncode == 0, res.stderr
    from itemaffinity.analysis import mine_tables
    from itemaffinity.data.interactions import InteractionData

    import duckdb

    from itemaffinity.models.cluster import customer_segments, product_groups, store_clusters
    from itemaffinity.models.registry import create_model
    from itemaffinity.store.artifacts import save_model

    data = InteractionData.from_store(store)
    mine_tables(str(store), data)  # pairs, itemsets, rules, groups and segments, as analyze makes them
    groups = product_groups(data)
    with duckdb.connect(str(store), read_only=True) as con:
        segments = customer_segments(con, data, groups)
    store_clusters(str(store), data, groups, segments)
    save_model(store, create_model("itemknn").fit(data))
    reviews = t.filter(pc.equal(t["user_id"], 1)).num_rows
    with running(Server(store)) as (server,):
        best = httpx.get(server.url + "/v1/items", params={"limit": 1}).json()["items"][0]
        context = browser.new_context(viewport={"width": 1300, "height": 1000}, base_url=server.url)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("/#/item/" + best["item_id"])
        page.wait_for_selector("[data-testid=complement]")
        expect(page.locator("#status")).to_contain_text("3,000 customers")
        chips = page.locator("[data-testid=complement] .chip").all_inner_texts()
        assert any(c.endswith(" shared customers") for c in chips) and not any("basket" in c for c in chips)
        assert page.locator("[data-testid=reason]").first.inner_text().startswith("Both bought by ")
        assert "of all customers" in page.inner_text("#product-head")
        assert "baskets" not in page.inner_text("#product-head")
        page.goto("/#/rules")
        page.wait_for_selector("#rules-count")
        assert "If the customer bought (product code)" in page.inner_text("main")
        assert "Min. support (share of customers)" in page.inner_text("main")
        page.goto("/#/customer/1")  # each review is a purchase of its own, not 0 orders
        page.wait_for_selector("[data-testid=customer-rec]")
        head = page.inner_text("#customer-head")
        assert f"— {reviews} purchases." in head and "spend" not in head and "days before" not in head  # no dates, prices
        context.close()
        assert not errors, errors


def test_a_grocery_product_page_names_shared_categories_and_answers_unsold_products_from_text(browser, tmp_path, cli,
                                                                                               shared_file):
    """Instacart's aisles are categories: a product page shows the aisle, and the related products in the same
    aisle say so ("same category"), in the chips and the reasons. Crystal Pacifier, in none of the sample's
    baskets, gets look-alike pacifiers from its text, and the page says why."""
    from svc_support import Server, running

    store = tmp_path / "instacart.duckdb"
    res = cli("ingest", shared_file("instacart", "order_products_sample.parquet"), "--preset", "instacart",
              "--store", store)
    assert res.returncode == 0, res.stderr
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.models.registry import create_model
    from itemaffinity.store.artifacts import save_model

    # No mined tables (a minute for 49,688 products' text neighbours): the server counts the pairs on first asking.
    save_model(store, create_model("itemknn").fit(InteractionData.from_store(store)))
    with running(Server(store, semantic="tfidf")) as (server,):
        context = browser.new_context(viewport={"width": 1300, "height": 1000}, base_url=server.url)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("/#/item/24852")  # Banana
        page.wait_for_selector("[data-testid=substitute]")
        assert page.inner_text("#product-title") == "Banana"
        expect(page.locator("#product-head")).to_contain_text("produce > fresh fruits")
        similar = page.get_by_test_id("substitute").filter(has=page.locator(".chip", has_text="same category"))
        expect(similar.first).to_be_visible()
        assert "Same category (produce > fresh fruits)" in similar.first.get_by_test_id("reason").inner_text()
        together = page.get_by_test_id("complement").filter(has=page.locator(".chip", has_text="same category"))
        expect(together.first).to_be_visible()
        page.goto("/#/item/44203")  # Crystal Pacifier: never bought
        page.wait_for_selector("[data-testid=similar-note]")
        expect(page.get_by_test_id("similar-note")).to_contain_text(
            "The itemknn model has nothing on this product: it has no score for a product never bought; shown "
            "instead: the products whose texts are most like its text")
        expect(page.get_by_test_id("substitute").first).to_contain_text("Pacifier")
        context.close()
        assert not errors, errors
