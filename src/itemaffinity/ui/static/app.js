/* itemaffinity web UI: a small single-page app over the REST API (no build step, no CDN).
 * Pages: product search, product page (bought together, similar, bundles), rules explorer,
 * association network (cytoscape), customers, model leaderboard, data quality. */
(function () {
  "use strict";

  const main = document.getElementById("app");

  // ---- helpers --------------------------------------------------------------------------------
  /** Create an element; attrs: class, text, html-free only (children are nodes or strings). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return el;
  }

  function query(params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v === null || v === undefined || v === "") continue;
      if (Array.isArray(v)) v.forEach((x) => u.append(k, x));
      else u.append(k, v);
    }
    const s = u.toString();
    return s ? "?" + s : "";
  }

  async function api(path, params) {
    const res = await fetch(path + query(params), { headers: { Accept: "application/json" } });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const msg = body && (body.detail || body.title) ? (body.detail || body.title) : res.statusText;
      const err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  const fmt = {
    int: (x) => (x === null || x === undefined ? "—" : Number(x).toLocaleString("en")),
    pct: (x, d = 1) => (x === null || x === undefined ? "—" : (100 * x).toFixed(d) + "%"),
    num: (x, d = 2) => (x === null || x === undefined || !isFinite(x) ? "—" : Number(x).toFixed(d)),
    money: (x) => (x === null || x === undefined ? "—" : Number(x).toFixed(2)),
    times: (x) => (x === null || x === undefined || !isFinite(x) ? "—" : Number(x).toFixed(1) + "×"),
  };

  const itemHref = (id) => "#/item/" + encodeURIComponent(id);

  function productCell(item) {
    return h("div", {},
      h("a", { href: itemHref(item.item_id), class: "product-link" }, item.title || item.item_id),
      " ", h("span", { class: "id" }, item.item_id));
  }

  function empty(text) { return h("div", { class: "empty" }, text); }
  function errorBox(err) { return h("div", { class: "error", role: "alert" }, "Could not load this: " + err.message); }
  function loading(text) { return h("p", { class: "loading" }, text || "Loading…"); }

  function page(title, lead, ...body) {
    main.replaceChildren(...[h("h1", { text: title }), lead ? h("p", { class: "lead", text: lead }) : null, ...body].filter(Boolean));
    main.focus({ preventScroll: true });
  }

  /** Replace the contents of `slot` with the result of an async render, showing errors in place. */
  async function fill(slot, render) {
    slot.replaceChildren(loading());
    try { slot.replaceChildren(...[].concat(await render()).flat(Infinity).filter(Boolean)); }
    catch (err) { slot.replaceChildren(errorBox(err)); }
  }

  function chips(list) { return h("div", { class: "chips" }, list.filter(Boolean).map(([t, cls]) => h("span", { class: "chip " + (cls || "") }, t))); }

  // ---- charts (own small SVG bar charts) --------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    children.flat(Infinity).forEach((c) => c && el.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    return el;
  }

  /** Horizontal bars: rows [{label, value, best}], value formatted by `format`. */
  function barChart(rows, { title, format = (v) => v.toFixed(3), width = 520 } = {}) {
    const barH = 22, gap = 6, left = 170, right = 70;
    const height = rows.length * (barH + gap) + 30;
    const max = Math.max(...rows.map((r) => r.value), 1e-12);
    const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title || "chart" });
    if (title) chart.appendChild(svg("text", { x: 0, y: 14, "font-weight": "600" }, title));
    rows.forEach((r, i) => {
      const y = 24 + i * (barH + gap);
      const w = Math.max(1, ((width - left - right) * r.value) / max);
      chart.appendChild(svg("text", { x: left - 8, y: y + 15, "text-anchor": "end" }, r.label));
      chart.appendChild(svg("rect", { x: left, y, width: w, height: barH, rx: 3, class: "bar" + (r.best ? " best" : "") },
        svg("title", {}, `${r.label}: ${format(r.value)}`)));
      chart.appendChild(svg("text", { x: left + w + 6, y: y + 15 }, format(r.value)));
    });
    return chart;
  }

  // ---- status line -----------------------------------------------------------------------------
  let health = null;
  // What the counts are of: baskets, or customers in a store without orders (reviews, ratings, views), where
  // what goes together is what the same customer bought (/health's unit).
  const byCustomer = () => Boolean(health && health.unit === "customer");
  const units = () => (byCustomer() ? "customers" : "baskets");
  const orders = () => (byCustomer() ? "purchases" : "orders");  // each purchase is one without orders
  const shared = (n) => (byCustomer() ? " shared customer" : " shared basket") + (n === 1 ? "" : "s");
  async function refreshStatus() {
    const el = document.getElementById("status");
    try {
      health = await api("/health");
      el.textContent = `snapshot v${health.snapshot_version} · ${fmt.int(health.items)} products · ` +
        `${fmt.int(health.baskets)} ${units()} · search: ${health.semantic === "off" || health.semantic === "unavailable" ? "words" : "words + " + health.semantic}`;
    } catch (err) { el.textContent = "server not reachable"; }
  }

  // ---- product search ----------------------------------------------------------------------------
  function searchPage(params) {
    const q = params.get("q") || "";
    const input = h("input", { type: "search", id: "search-input", value: q, placeholder: "Product name or code, e.g. heart holder or 85123A",
      "aria-label": "Search products", autofocus: true });
    const form = h("form", { class: "row", role: "search", onsubmit: (e) => { e.preventDefault(); location.hash = "#/search" + query({ q: input.value.trim() }); } },
      input, h("button", { type: "submit", id: "search-button" }, "Search"));
    const results = h("div", { id: "search-results" });
    page("Find a product", "Search by words of the product name or by product code. Open a product to see what sells with it, what could replace it, and the bundles it is part of.",
      h("div", { class: "card" }, form), h("div", { class: "card" }, results));
    renderSearch(results, q, Number(params.get("offset") || 0));
  }

  async function renderSearch(slot, q, offset) {
    const limit = 25;
    await fill(slot, async () => {
      const r = await api("/v1/items", { q, limit, offset });
      const heading = q ? `${fmt.int(r.total)} products match “${q}”` : "Best sellers (type above to search)";
      if (!r.items.length) return [h("h2", { text: heading }), empty(q ? "No product matches these words. Try fewer or shorter words, or a product code." : "The store has no products yet.")];
      const table = h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Product"), h("th", {}, "Product group"), h("th", { class: "num" }, "Price"), h("th", { class: "num" }, byCustomer() ? "Customers" : "Baskets"), h("th", {}, "Matched on"))),
        h("tbody", {}, r.items.map((it) => h("tr", { "data-testid": "search-result" },
          h("td", {}, productCell(it)), h("td", { text: it.group || "—" }), h("td", { class: "num", text: fmt.money(it.price) }),
          h("td", { class: "num", text: fmt.int(it.baskets) }), h("td", { class: "hint", text: it.match })))));
      const pager = h("div", { class: "pager" },
        h("button", { class: "secondary", disabled: offset === 0, onclick: () => { location.hash = "#/search" + query({ q, offset: Math.max(0, offset - limit) }); } }, "← Previous"),
        h("span", { class: "hint", text: `${offset + 1}–${offset + r.items.length} of ${fmt.int(r.total)}` }),
        h("button", { class: "secondary", disabled: offset + limit >= r.total, onclick: () => { location.hash = "#/search" + query({ q, offset: offset + limit }); } }, "Next →"));
      return [h("h2", { text: heading }), r.semantic && q ? h("p", { class: "hint", text: `Also matching by meaning (${r.semantic} text search).` }) : null, table, pager];
    });
  }

  // ---- product page ----------------------------------------------------------------------------
  function filterBar(state, onChange) {
    const minP = h("input", { type: "number", min: 0, step: "0.01", value: state.min_price || "", "aria-label": "Lowest price" });
    const maxP = h("input", { type: "number", min: 0, step: "0.01", value: state.max_price || "", "aria-label": "Highest price" });
    const cat = h("input", { type: "text", value: state.category || "", placeholder: "e.g. christmas", list: "group-list", "aria-label": "Only this group or category" });
    const exc = h("input", { type: "text", value: state.exclude_category || "", placeholder: "e.g. wrap", list: "group-list", "aria-label": "Leave out this group or category" });
    const list = h("datalist", { id: "group-list" });
    api("/v1/groups").then((g) => g.groups.forEach((x) => list.appendChild(h("option", { value: x.label })))).catch(() => {});
    const apply = () => onChange({ min_price: minP.value, max_price: maxP.value, category: cat.value.trim(), exclude_category: exc.value.trim() });
    return h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); apply(); } },
      h("label", { class: "field" }, "Price from", minP), h("label", { class: "field" }, "Price to", maxP),
      h("label", { class: "field" }, "Only group / category", cat), h("label", { class: "field" }, "Leave out group / category", exc), list,
      h("button", { type: "submit" }, "Apply filters"),
      h("span", { class: "hint" }, "Filters apply to the suggestions below, not to the product itself."));
  }

  function itemPage(params, id) {
    const filters = { min_price: params.get("min_price"), max_price: params.get("max_price"), category: params.get("category"), exclude_category: params.get("exclude_category") };
    const head = h("div", { class: "card", id: "product-head" }, loading());
    const complements = h("div", { id: "complements" });
    const similar = h("div", { id: "similar" });
    const bundles = h("div", { id: "bundles" });
    const modelSel = h("select", { id: "model-select", "aria-label": "Model for similar products" });
    const relationSel = h("select", { id: "relation-select", "aria-label": "Which similar products" },
      h("option", { value: "" }, "all of them"), h("option", { value: "substitute" }, "only what could replace it (substitutes)"),
      h("option", { value: "complement" }, "only what goes with it (complements)"));
    relationSel.onchange = () => loadSimilar();
    page("Product", null, head,
      h("div", { class: "card" }, filterBar(filters, (f) => { location.hash = itemHref(id) + query(f); })),
      h("div", { class: "grid" },
        h("section", { class: "card", "aria-labelledby": "h-comp" }, h("h2", { id: "h-comp", text: "Bought together (complements)" }),
          h("p", { class: "hint", text: `Products ${byCustomer() ? "bought by the same customers" : "found in the same baskets"} much more often than chance. Good for cross-selling and “frequently bought together”.` }), complements),
        h("section", { class: "card", "aria-labelledby": "h-sim" }, h("h2", { id: "h-sim", text: "Similar products (substitutes)" }),
          h("p", { class: "hint" }, "Alternatives a shopper might take instead, according to the model ", modelSel, "; show ", relationSel, "."), similar)),
      h("section", { class: "card", "aria-labelledby": "h-bun" }, h("h2", { id: "h-bun", text: "Bundles" }),
        h("p", { class: "hint", text: "Groups of products bought together as a whole — candidates for bundle offers." }), bundles));
    const f = { min_price: filters.min_price, max_price: filters.max_price, category: filters.category, exclude_category: filters.exclude_category };
    fill(head, async () => {
      const it = await api("/v1/items/" + encodeURIComponent(id));
      document.title = (it.title || it.item_id) + " — itemaffinity";
      (it.models || []).forEach((m) => modelSel.appendChild(h("option", { value: m, selected: m === it.default_model }, m + (m === it.default_model ? " (best on leaderboard)" : ""))));
      modelSel.onchange = () => loadSimilar();
      loadSimilar();
      const s = it.stats;
      return [h("h1", { id: "product-title", text: it.title || it.item_id }),
        h("div", {}, h("span", { class: "id", text: "Product code " + it.item_id }), it.group ? h("span", { class: "chip tag", style: "margin-left:8px" }, "group: " + it.group) : null,
          it.category ? h("span", { class: "chip tag", style: "margin-left:8px" }, it.category) : null,
          it.added_since_snapshot ? h("span", { class: "chip", id: "new-product", style: "margin-left:8px" }, "added since the last rebuild: no sales data yet") : null),
        it.description ? h("p", { text: it.description }) : null,
        h("div", { class: "stats" },
          stat(fmt.money(it.price), "typical price"), byCustomer() ? null : stat(fmt.int(s.baskets), "baskets"),
          stat(fmt.pct(s.share_of_baskets, 2), "of all " + units()), stat(fmt.int(s.users), "customers"), stat(s.popularity_rank == null ? "—" : "#" + fmt.int(s.popularity_rank), "best-seller rank"),
          stat(s.first_seen ? s.first_seen.slice(0, 10) : "—", "first sold"), stat(s.last_seen ? s.last_seen.slice(0, 10) : "—", "last sold")),
        h("p", {}, h("a", { class: "button secondary", href: "#/network/" + encodeURIComponent(it.item_id), id: "open-network" }, "Show association network"), " ",
          h("a", { class: "button secondary", href: "#/rules" + query({ item: it.item_id }), id: "open-rules" }, "Rules with this product"))];
    });
    fill(complements, async () => {
      const r = await api(`/v1/items/${encodeURIComponent(id)}/bought-together`, { n: 10, explain: true, ...f });
      bundles.replaceChildren(...renderBundles(r.bundles));
      if (!r.items.length) return empty(`No product is bought with this one often enough yet (at least 2${shared(2)} are needed)` + (f.category || f.min_price || f.max_price ? ", or the filters leave none." : "."));
      return r.items.map((x) => h("div", { class: "list-item", "data-testid": "complement" }, productCell(x),
        chips([[fmt.int(x.evidence.co_count) + shared(x.evidence.co_count), "good"], [fmt.times(x.evidence.lift) + " chance"], [fmt.pct(x.evidence.confidence, 0) + " of its " + units()],
          x.evidence.same_brand ? ["same brand", "tag"] : null, x.evidence.same_category ? ["same category", "tag"] : null,
          x.evidence.relation && x.evidence.relation !== "related" ? [x.evidence.relation, "tag"] : null, x.price == null ? null : [fmt.money(x.price)]]),
        h("div", { class: "reason", "data-testid": "reason", text: x.evidence.reason })));
    });
    function loadSimilar() {
      fill(similar, async () => {
        const r = await api(`/v1/items/${encodeURIComponent(id)}/similar`, { n: 10, explain: true, model: modelSel.value || null, relation: relationSel.value || null, ...f });
        const note = r.note ? r.note.charAt(0).toUpperCase() + r.note.slice(1) + "." : null;
        if (!r.items.length) return empty(note || "The model has nothing similar to show" + (f.category || f.min_price || f.max_price || relationSel.value ? " with these filters." : "."));
        return [note ? h("p", { class: "hint", "data-testid": "similar-note", text: note }) : null].concat(r.items.map((x) => h("div", { class: "list-item", "data-testid": "substitute" }, productCell(x),
          chips([x.evidence.same_group ? ["same group", "tag"] : null, x.evidence.same_brand ? ["same brand", "tag"] : null, x.evidence.same_category ? ["same category", "tag"] : null, x.evidence.text_similarity !== undefined && x.evidence.text_similarity !== null ? ["name similarity " + fmt.num(x.evidence.text_similarity)] : null,
            [fmt.int(x.evidence.co_count) + shared(x.evidence.co_count)], x.evidence.relation && x.evidence.relation !== "related" ? [x.evidence.relation, "tag"] : null, x.price == null ? null : [fmt.money(x.price)]]),
          h("div", { class: "reason", "data-testid": "reason", text: x.evidence.reason }))));
      });
    }
  }

  function stat(value, label) { return h("div", { class: "stat" }, h("b", { text: value }), h("span", { text: label })); }

  function renderBundles(list) {
    if (!list.length) return [empty(`This product is not part of a frequent bundle (bundles need to appear in at least 1% of ${units()}).`)];
    return list.map((b) => h("div", { class: "list-item", "data-testid": "bundle" },
      h("div", {}, b.items.map((it, i) => [i ? " + " : "", h("a", { href: itemHref(it.item_id) }, it.title || it.item_id)])),
      chips([[fmt.int(b.count) + " " + units(), "good"], [fmt.pct(b.support) + " of all " + units()], [fmt.times(b.lift) + " chance"]]),
      h("div", { class: "reason", text: b.reason })));
  }

  // ---- rules explorer ----------------------------------------------------------------------------
  function rulesPage(params) {
    const p = Object.fromEntries(params.entries());
    const field = (name, label, attrs) => h("label", { class: "field" }, label, h("input", { name, value: p[name] || "", ...attrs }));
    const sort = h("select", { name: "sort", id: "rules-sort", "aria-label": "Sort by" },
      ["lift", "confidence", "support", "leverage", "conviction"].map((s) => h("option", { value: s, selected: (p.sort || "lift") === s }, s)));
    const groupList = h("datalist", { id: "rule-groups" });
    api("/v1/groups").then((g) => g.groups.forEach((x) => groupList.appendChild(h("option", { value: x.label })))).catch(() => {});
    const form = h("form", { class: "row", id: "rules-form", onsubmit: (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      const next = {};
      for (const [k, v] of fd.entries()) if (String(v).trim()) next[k] = String(v).trim();
      location.hash = "#/rules" + query(next);
    } },
      field("item", "With this product on either side (code)", { placeholder: "any", id: "rules-item" }),
      field("antecedent", byCustomer() ? "If the customer bought (product code)" : "If the basket has (product code)", { placeholder: "e.g. 22423" }),
      field("consequent", byCustomer() ? "…they also bought (product code)" : "…then it also has (product code)", { placeholder: "any" }),
      field("category", "Suggested products in group / category", { list: "rule-groups", placeholder: "any", id: "rules-category" }), groupList,
      field("min_support", `Min. support (share of ${units()})`, { type: "number", step: "0.001", min: 0, max: 1, placeholder: "0.01" }),
      field("min_confidence", "Min. confidence", { type: "number", step: "0.05", min: 0, max: 1, placeholder: "0–1" }),
      field("min_lift", "Min. lift", { type: "number", step: "0.5", min: 0, id: "rules-min-lift", placeholder: "e.g. 5" }),
      h("label", { class: "field" }, "Sort by", sort),
      h("button", { type: "submit", id: "rules-apply" }, "Show rules"));
    const results = h("div", { id: "rules-results" });
    const u = units();
    page("Rules explorer", `An association rule “if A then C” means: ${u} with A often also have C. Support = share of all ${u} holding A and C; confidence = share of ${u} with A that also hold C; lift = how many times more often than if A and C were unrelated (above 1 = they attract).`,
      h("div", { class: "card" }, form), h("div", { class: "card" }, results));
    const offset = Number(p.offset || 0), limit = 50;
    const filters = { item: p.item, antecedent: p.antecedent, consequent: p.consequent, category: p.category, min_support: p.min_support, min_confidence: p.min_confidence, min_lift: p.min_lift, sort: p.sort || "lift" };
    fill(results, async () => {
      const r = await api("/v1/rules", { ...filters, limit, offset });
      const csv = "/v1/rules" + query({ ...filters, limit: 10000, format: "csv" });
      const top = h("div", { class: "row", style: "justify-content: space-between; align-items: center" },
        h("h2", { id: "rules-count", text: `${fmt.int(r.total)} rules` }),
        h("a", { class: "button secondary", href: csv, download: "rules.csv", id: "rules-export" }, "Export CSV"));
      if (!r.items.length) return [top, empty("No rule passes these filters. Lower the minimums or clear a product code.")];
      const side = (items) => h("div", {}, items.map((x, i) => [i ? h("br") : null, h("a", { href: itemHref(x.item_id) }, x.title || x.item_id), " ", h("span", { class: "id", text: x.item_id })]));
      const table = h("table", { id: "rules-table" }, h("thead", {}, h("tr", {}, h("th", {}, byCustomer() ? "If the customer bought" : "If the basket has"),
        h("th", {}, byCustomer() ? "…they often also bought" : "…it often also has"),
        ...["support", "confidence", "lift", "leverage", "conviction"].map((k) => h("th", { class: "num" }, k)))),
        h("tbody", {}, r.items.map((x) => h("tr", { "data-testid": "rule-row", title: x.reason }, h("td", {}, side(x.antecedent)), h("td", {}, side(x.consequent)),
          h("td", { class: "num", text: fmt.pct(x.support, 2) }), h("td", { class: "num", text: fmt.pct(x.confidence, 0) }), h("td", { class: "num", "data-testid": "rule-lift", text: fmt.num(x.lift, 1) }),
          h("td", { class: "num", text: x.leverage.toFixed(4) }), h("td", { class: "num", text: isFinite(x.conviction) ? fmt.num(x.conviction, 2) : "∞" })))));
      const go = (o) => { location.hash = "#/rules" + query({ ...p, offset: o }); };
      const pager = h("div", { class: "pager" }, h("button", { class: "secondary", disabled: offset === 0, onclick: () => go(Math.max(0, offset - limit)) }, "← Previous"),
        h("span", { class: "hint", text: `${offset + 1}–${offset + r.items.length} of ${fmt.int(r.total)}` }),
        h("button", { class: "secondary", disabled: offset + limit >= r.total, onclick: () => go(offset + limit) }, "Next →"));
      return [top, h("p", { class: "hint", text: "Hover a row for the rule in plain words." }), table, pager];
    });
  }

  // ---- association network -------------------------------------------------------------------------
  let cy = null;
  function networkPage(params, id) {
    if (!id) {
      const input = h("input", { type: "search", placeholder: "Product code, e.g. 85123A", "aria-label": "Product code" });
      page("Association network", "Pick a product to see it with the products most bought together with it, and how those relate to each other.",
        h("div", { class: "card" }, h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) location.hash = "#/network/" + encodeURIComponent(input.value.trim()); } },
          input, h("button", { type: "submit" }, "Show network")), h("p", { class: "hint" }, "Or open a product from ", h("a", { href: "#/" }, "search"), " and choose “Show association network”.")));
      return;
    }
    const n = Math.min(25, Math.max(3, Number(params.get("n") || 12)));
    const info = h("div", { id: "network-info", class: "hint" }, "Click a product to see it here; double-click to centre the network on it.");
    const canvas = h("div", { id: "network-canvas", role: "img", "aria-label": "Association network" });
    const size = h("select", { "aria-label": "Neighbours" }, [6, 12, 18, 25].map((k) => h("option", { value: k, selected: k === n }, k + " neighbours")));
    size.onchange = () => { location.hash = "#/network/" + encodeURIComponent(id) + query({ n: size.value }); };
    const status = h("span", { id: "network-status", class: "hint" }, "Loading…");
    page("Association network", null,
      h("div", { class: "card" }, h("div", { class: "row", style: "align-items:center" }, h("a", { href: itemHref(id) }, "← Back to the product"), size, status),
        h("p", { class: "legend" }, `Each circle is a product (bigger = in more ${units()}). A line joins two products bought together more often than chance; thicker = stronger (lift). Point at a product to see how many ${units()} it shares with each neighbour. The chosen product is dark blue, in the middle.`)),
      h("div", { class: "card" }, canvas, info));
    drawNetwork(id, n, canvas, status, info);
  }

  async function drawNetwork(id, n, canvas, status, info) {
    try {
      const center = await api(`/v1/items/${encodeURIComponent(id)}/bought-together`, { n, explain: true });
      const nodes = new Map([[center.item.item_id, { ...center.item, center: true }]]);
      center.items.forEach((x) => nodes.set(x.item_id, x));
      const edges = new Map();
      const addEdge = (a, b, ev) => {
        const key = a < b ? a + "|" + b : b + "|" + a;
        if (!edges.has(key)) edges.set(key, { source: a, target: b, co: ev.co_count, lift: ev.lift });
      };
      center.items.forEach((x) => addEdge(center.item.item_id, x.item_id, x.evidence));
      const around = await Promise.all(center.items.map((x) => api(`/v1/items/${encodeURIComponent(x.item_id)}/bought-together`, { n: 25, explain: true }).catch(() => null)));
      around.forEach((r) => r && r.items.forEach((y) => { if (nodes.has(y.item_id) && y.item_id !== r.item.item_id) addEdge(r.item.item_id, y.item_id, y.evidence); }));
      const details = await Promise.all([...nodes.keys()].map((k) => api("/v1/items/" + encodeURIComponent(k)).catch(() => null)));
      const baskets = new Map(details.filter(Boolean).map((d) => [d.item_id, d.stats.baskets]));
      const maxB = Math.max(...baskets.values(), 1), maxLift = Math.max(...[...edges.values()].map((e) => e.lift), 1);
      const elements = [...[...nodes.values()].map((x) => ({ data: { id: x.item_id, label: (x.title || x.item_id).slice(0, 28), title: x.title || x.item_id,
        size: 22 + 38 * Math.sqrt((baskets.get(x.item_id) || 1) / maxB), center: x.center ? 1 : 0, baskets: baskets.get(x.item_id) || 0 } })),
        ...[...edges.values()].map((e, i) => ({ data: { id: "e" + i, source: e.source, target: e.target, co: e.co, lift: e.lift, width: 1 + 7 * Math.min(1, e.lift / maxLift) } }))];
      if (cy) cy.destroy();
      cy = cytoscape({ container: canvas, elements,
        style: [
          { selector: "node", style: { "background-color": "#7d9de0", label: "data(label)", width: "data(size)", height: "data(size)", "font-size": 10, "text-wrap": "wrap", "text-max-width": 110, color: "#1d2330", "text-valign": "bottom", "text-margin-y": 4 } },
          { selector: "node[center = 1]", style: { "background-color": "#1b3f95", "font-weight": "bold" } },
          { selector: "edge", style: { width: "data(width)", "line-color": "#b8c4dc", "curve-style": "haystack", opacity: 0.8 } },
          { selector: "edge:selected, edge.near", style: { label: "data(co)", "font-size": 10, color: "#1d2330", "line-color": "#1f7a4a", opacity: 1 } },
          { selector: "node:selected", style: { "background-color": "#1f7a4a" } }],
        // The product in the middle, its partners on rings around it (bigger sellers inside).
        layout: { name: "concentric", concentric: (node) => (node.data("center") ? 1e9 : node.data("baskets")), levelWidth: () => Math.max(1, maxB / 3),
          minNodeSpacing: 28, animate: false, fit: true, padding: 30 } });
      cy.on("mouseover", "node", (evt) => evt.target.connectedEdges().addClass("near"));
      cy.on("mouseout", "node", (evt) => evt.target.connectedEdges().removeClass("near"));
      cy.on("tap", "node", (evt) => {
        const d = evt.target.data();
        info.replaceChildren(h("b", { text: d.title }), " ", h("span", { class: "id", text: d.id }), ` — in ${fmt.int(d.baskets)} ${units()}. `, h("a", { href: itemHref(d.id) }, "Open product"));
      });
      cy.on("tap", "edge", (evt) => {
        const d = evt.target.data();
        info.replaceChildren(`${nodes.get(d.source).title || d.source} and ${nodes.get(d.target).title || d.target}: ${byCustomer() ? "both bought by" : "bought together in"} ${fmt.int(d.co)} ${units()}, ${fmt.times(d.lift)} as often as chance.`);
      });
      cy.on("dbltap", "node", (evt) => { location.hash = "#/network/" + encodeURIComponent(evt.target.id()); });
      status.textContent = `${nodes.size} products, ${edges.size} links`;
      canvas.dataset.nodes = String(nodes.size);
      canvas.dataset.edges = String(edges.size);
      canvas.dataset.testid = "network-ready";
      if (!center.items.length) info.replaceChildren(empty("No product is bought with this one often enough to draw a network."));
    } catch (err) {
      status.textContent = "";
      canvas.replaceChildren(errorBox(err));
    }
  }

  // ---- customers ---------------------------------------------------------------------------------
  const SEGMENT_HELP = {
    "Champions": "bought recently, often and for a lot", "Loyal customers": "buy regularly", "New customers": "first purchases recently",
    "Promising": "recent but few purchases", "At risk": "used to buy often, not lately", "Hibernating": "few purchases, long ago", "Lost": "long gone, little spend",
  };

  function customersPage(params) {
    const seg = params.get("segment");
    const input = h("input", { type: "search", id: "customer-input", placeholder: "Customer id, e.g. 12347", "aria-label": "Customer id" });
    const summary = h("div", { id: "segments" });
    const list = h("div", { id: "segment-users" });
    page("Customers", "Customers grouped by how recently, how often and how much they buy (RFM). Open a customer to see what to recommend to them and why.",
      h("div", { class: "card" }, h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) location.hash = "#/customer/" + encodeURIComponent(input.value.trim()); } },
        input, h("button", { type: "submit" }, "Open customer"))),
      h("div", { class: "grid" }, h("div", { class: "card" }, summary), h("div", { class: "card" }, list)));
    const offset = Number(params.get("offset") || 0);
    fill(summary, async () => {
      const r = await api("/v1/segments", { segment: seg, limit: 25, offset });
      list.replaceChildren(...renderSegmentUsers(r, seg, offset));
      if (!r.summary.length) return empty("No segments yet: run the analysis (itemaffinity analyze) on a store with customer ids.");
      return [h("h2", { text: "Segments" }), barChart(r.summary.map((s) => ({ label: s.segment, value: s.users })), { title: "Customers per segment", format: (v) => fmt.int(v) }),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Segment"), h("th", { class: "num" }, "Customers"), h("th", { class: "num" }, "Avg. days since last " + orders().slice(0, -1)), h("th", { class: "num" }, "Avg. " + orders()), h("th", { class: "num" }, "Avg. spend"))),
          h("tbody", {}, r.summary.map((s) => h("tr", {}, h("td", {}, h("a", { href: "#/customers" + query({ segment: s.segment }) }, s.segment), h("div", { class: "reason", text: SEGMENT_HELP[s.segment] || "" })),
            h("td", { class: "num", text: fmt.int(s.users) }), h("td", { class: "num", text: fmt.num(s.avg_recency_days, 0) }), h("td", { class: "num", text: fmt.num(s.avg_frequency, 1) }), h("td", { class: "num", text: fmt.money(s.avg_monetary) }))))) ];
    });
  }

  function renderSegmentUsers(r, seg, offset) {
    if (!seg) return [h("h2", { text: "Customers" }), empty("Pick a segment on the left to list its customers, biggest spenders first.")];
    const go = (o) => { location.hash = "#/customers" + query({ segment: seg, offset: o }); };
    return [h("h2", { text: `${seg}: ${fmt.int(r.total)} customers` }),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Customer"), h("th", { class: "num" }, "Days since last " + orders().slice(0, -1)), h("th", { class: "num" }, orders().charAt(0).toUpperCase() + orders().slice(1)), h("th", { class: "num" }, "Spend"))),
        h("tbody", {}, r.users.map((u) => h("tr", {}, h("td", {}, h("a", { href: "#/customer/" + encodeURIComponent(u.user_id) }, u.user_id)),
          h("td", { class: "num", text: fmt.num(u.recency_days, 0) }), h("td", { class: "num", text: fmt.int(u.frequency) }), h("td", { class: "num", text: fmt.money(u.monetary) }))))),
      h("div", { class: "pager" }, h("button", { class: "secondary", disabled: offset === 0, onclick: () => go(Math.max(0, offset - 25)) }, "← Previous"),
        h("button", { class: "secondary", disabled: offset + 25 >= r.total, onclick: () => go(offset + 25) }, "Next →"))];
  }

  // the cold-start chain's steps (RecsOut.fallback)
  const FALLBACK_WORDS = { text: "the products whose texts are most like theirs", category: "best sellers of their categories", popular: "best sellers" };

  function customerPage(params, id) {
    const head = h("div", { class: "card", id: "customer-head" });
    const recs = h("div", { id: "customer-recs" });
    page("Customer " + id, null, head, h("section", { class: "card" }, h("h2", { text: "Recommended for this customer" }),
      h("p", { class: "hint", text: "From the customer's purchases, with the products behind each suggestion." }), recs));
    fill(recs, async () => {
      const r = await api(`/v1/users/${encodeURIComponent(id)}/recommendations`, { n: 10, explain: true });
      const u = r.user;
      head.replaceChildren(h("h2", { text: u.known ? "Customer " + id : "Unknown customer " + id }),
        u.segment ? h("p", {}, h("span", { class: "chip tag" }, u.segment.segment), " ", SEGMENT_HELP[u.segment.segment] || "",
          " — " + [u.segment.recency_days == null ? null : `last ${orders().slice(0, -1)} ${fmt.num(u.segment.recency_days, 0)} days before the end of the data`,
            `${fmt.int(u.segment.frequency)} ${orders().slice(0, u.segment.frequency === 1 ? -1 : undefined)}`,
            u.segment.monetary ? `spend ${fmt.money(u.segment.monetary)}` : null].filter(Boolean).join(", ") + ".") :
          h("p", { class: "hint", text: u.known ? "No segment for this customer (no purchases with a date)." : "This customer id has no purchases in the data; showing best sellers." }),
        h("h2", { text: "Bought recently" }),
        u.recent_items.length ? h("div", { class: "chips" }, u.recent_items.map((it) => h("a", { class: "chip", href: itemHref(it.item_id) }, it.title || it.item_id))) : empty("No purchases yet."));
      if (!r.items.length) return empty("Nothing to recommend: the customer already bought everything the model suggests.");
      return [r.fallback ? h("p", { class: "hint", text: r.history_size ? `The ${r.model} model has nothing to go on for the products in the history yet, so these are ${FALLBACK_WORDS[r.fallback] || "best sellers"}.` : "No history to go on, so these are best sellers." }) : h("p", { class: "hint", text: `Model: ${r.model}, from ${r.history_size} products in the history.` }),
        ...r.items.map((x) => h("div", { class: "list-item", "data-testid": "customer-rec" }, productCell(x),
          x.evidence && x.evidence.contributing && x.evidence.contributing.length ? chips(x.evidence.contributing.map((c) => ["with " + (c.title || c.item_id) + ": " + fmt.int(c.co_count) + " " + units().slice(0, c.co_count === 1 ? -1 : undefined)])) : null,
          h("div", { class: "reason", text: x.evidence ? x.evidence.reason : "" })))];
    });
  }

  // ---- leaderboard ---------------------------------------------------------------------------------
  // NDCG@10 over the leader's and its interval, as the leaderboard rows carry them (evaluation.compare_to_best)
  const vsBest = (x) => x["NDCG@10_vs_best"] == null ? "—"
    : `${fmt.num(x["NDCG@10_vs_best"], 3)} (${fmt.num(x["NDCG@10_vs_best_low"], 3)}–${fmt.num(x["NDCG@10_vs_best_high"], 3)})`;
  // what the rare · middle · best sellers column means, with the task's cut points (evaluation.metrics.popularity_thirds)
  const byPopularityHint = (t) => {
    const [lo, hi] = t.cuts.map((c) => fmt.int(Math.round(c)));
    return ` Rare · middle · best sellers: NDCG@10 in three groups of the test queries, as equal as ties allow, by how often the held-out product was bought in the training data (≤ ${lo}, ${lo}–${hi}, more than ${hi} ${t.of}): does a model find what sells rarely, or only the best sellers?`;
  };

  const TASK_HELP = {  // what each protocol holds out (evaluation.protocols), as analyze's terminal says it
    "basket-completion": "a product held out of each test basket, ranked from the rest of it",
    "next-item": "each test customer's last product, ranked from the earlier ones",
    "next-basket": "the new products each customer bought after the split, ranked from what they bought before",
    "cold-start": "products first sold after the split, ranked from their text alone",
  };

  function evaluationPage() {
    const body = h("div", { id: "leaderboard" });
    page("Model leaderboard", "How well each model predicts products held out of the store's own data, every model on the same test and ranking the whole catalogue: basket completion, or the next item where there are no orders with times, and, where there is one, cold start. Higher is better; the default model serves “similar products” and recommendations.", body);
    fill(body, async () => {
      const r = await api("/v1/evaluation");
      if (!r.rows.length) return empty("No evaluation yet: run `itemaffinity analyze` or `itemaffinity evaluate` on this store.");
      const tasks = [...new Set(r.rows.map((x) => x.task))];
      const out = [];
      for (const task of tasks) {
        const rows = r.rows.filter((x) => x.task === task);
        const best = Math.max(...rows.map((x) => x["NDCG@10"] || 0));
        const thirds = (rows.find((x) => x.popularity_thirds) || {}).popularity_thirds;  // none on new products
        const chartRows = (metric) => rows.map((x) => ({ label: x.label || x.model, value: x[metric] || 0, best: (x["NDCG@10"] || 0) === best }));
        out.push(h("div", { class: "card" }, h("h2", { text: `${task}` }), h("p", { class: "hint", text: (TASK_HELP[task] ? TASK_HELP[task] + " · " : "") + `${rows[0].split || ""} · ${fmt.int(rows[0].queries)} test queries` + (rows.some((x) => x.model === r.default_model) ? ` · default model: ${r.default_model}` : "") }),
          h("div", { class: "grid" }, h("div", {}, barChart(chartRows("NDCG@10"), { title: "NDCG@10 (ranking quality)" })),
            h("div", {}, barChart(chartRows("HR@10"), { title: "Hit rate @10 (held-out product in the top 10)", format: (v) => fmt.pct(v) })),
            h("div", {}, barChart(chartRows("MRR@10"), { title: "MRR@10" })),
            h("div", {}, barChart(chartRows("coverage@10"), { title: "Catalogue coverage @10", format: (v) => fmt.pct(v) }))),
          h("table", {}, h("thead", {}, h("tr", {}, ["model", "NDCG@10", "× best (95% interval)", ...(thirds ? ["NDCG@10: rare · middle · best sellers"] : []), "HR@10", "MRR@10", "Recall@20", "coverage@10", "fit s"].map((c, i) => h("th", { class: i ? "num" : "" }, c)))),
            h("tbody", {}, rows.map((x) => h("tr", {}, h("td", { text: (x.label || x.model) + (x.model === r.default_model ? " ★" : "") }),
              h("td", { class: "num", text: fmt.num(x["NDCG@10"], 4) }), h("td", { class: "num vs-best", text: vsBest(x) }),
              thirds ? h("td", { class: "num by-popularity", text: x.popularity_thirds ? x.popularity_thirds["NDCG@10"].map((v) => fmt.num(v, 4)).join(" · ") : "—" }) : null,
              ...["HR@10", "MRR@10", "Recall@20", "coverage@10", "fit_s"].map((k) => h("td", { class: "num", text: fmt.num(x[k], k === "fit_s" ? 1 : 4) })))))),
          h("p", { class: "hint", text: "× best: NDCG@10 over the leader's, with a 95% paired bootstrap interval over the test's customers (its queries when it has none); an interval that holds 1 means this test cannot tell the model from the leader. — : this model was last evaluated in a run without the leader; evaluate it beside the leader to compare." + (thirds ? byPopularityHint(thirds) : "") })));
      }
      return out;
    });
  }

  // ---- data quality ---------------------------------------------------------------------------------
  function qualityPage(params, reason) {
    const body = h("div", { id: "quality" });
    const examples = h("div", { id: "quality-examples" });
    page("Data quality", "Rows that were not used, and why. Nothing is dropped silently: every refused row is kept with its reason.", body, examples);
    fill(body, async () => {
      const r = await api("/v1/data-quality");
      if (!r.by_reason.length) return h("div", { class: "card" }, empty("No rejected rows: every row read was usable."));
      const total = r.total_rejected + r.events_in_snapshot;
      return [h("div", { class: "card" }, h("div", { class: "stats" }, stat(fmt.int(r.total_rejected), "rows refused"), stat(fmt.int(r.events_in_snapshot), "events used"),
          stat(fmt.pct(r.total_rejected / Math.max(total, 1), 2), "refused share")),
        barChart(r.by_reason.map((x) => ({ label: x.reason, value: x.rows })), { title: "Refused rows by reason", format: (v) => fmt.int(v) }),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Reason"), h("th", {}, "What it means"), h("th", { class: "num" }, "Rows"))),
          h("tbody", {}, r.by_reason.map((x) => h("tr", { "data-testid": "reject-reason" }, h("td", {}, h("a", { href: "#/quality/" + encodeURIComponent(x.reason) }, x.reason)),
            h("td", { text: x.description }), h("td", { class: "num", text: fmt.int(x.rows) })))))),
        h("div", { class: "card" }, h("h2", { text: "By source" }), h("table", {}, h("tbody", {}, r.by_source.map((s) => h("tr", {}, h("td", { text: s.source }), h("td", { class: "num", text: fmt.int(s.rows) }))))))];
    });
    if (reason) {
      fill(examples, async () => {
        const r = await api("/v1/data-quality/" + encodeURIComponent(reason));
        return h("div", { class: "card" }, h("h2", { text: `Examples: ${r.reason} (${fmt.int(r.rows)} rows)` }), h("p", { class: "hint", text: r.description }),
          r.examples.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Source"), h("th", { class: "num" }, "Row"), h("th", {}, "Row as read"))),
            h("tbody", {}, r.examples.map((x) => h("tr", {}, h("td", { class: "id", text: x.source }), h("td", { class: "num", text: x.row === null ? "—" : fmt.int(x.row) }),
              h("td", {}, h("pre", { class: "raw", text: x.raw || x.detail || "" })))))) : empty("No example rows kept for this reason."));
      });
    }
  }

  // ---- router ---------------------------------------------------------------------------------------
  const ROUTES = [
    [/^\/?$/, searchPage, "search"], [/^\/search$/, searchPage, "search"], [/^\/item\/(.+)$/, itemPage, "search"],
    [/^\/rules$/, rulesPage, "rules"], [/^\/network(?:\/(.+))?$/, networkPage, "network"],
    [/^\/customers$/, customersPage, "customers"], [/^\/customer\/(.+)$/, customerPage, "customers"],
    [/^\/evaluation$/, evaluationPage, "evaluation"], [/^\/quality(?:\/(.+))?$/, qualityPage, "quality"],
  ];

  function route() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, qs] = raw.split("?");
    const params = new URLSearchParams(qs || "");
    for (const [re, fn, nav] of ROUTES) {
      const m = path.match(re);
      if (m) {
        document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
        document.title = "itemaffinity";
        fn(params, m[1] ? decodeURIComponent(m[1]) : undefined);
        return;
      }
    }
    page("Page not found", "There is no page at this address.", h("a", { href: "#/" }, "Go to product search"));
  }

  window.addEventListener("hashchange", route);
  setInterval(refreshStatus, 30000);
  refreshStatus().then(route);  // the pages' words follow the store's unit
})();
