"""The read queries behind the endpoints: plain functions of (snapshot, online state, parameters).

Models score and rank (`Recommender.similar_items` / `recommend`, STYLE 4); business filters are
applied here once, to every kind of result, as a boolean mask over the snapshot's items.
Explanations ("evidence") say in plain words why an item is shown, from the co-purchase counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from itemaffinity.mining.measures import MEASURES
from itemaffinity.models.base import Recommender, Recs
from itemaffinity.models.explain import (FALLBACK_SOURCES, RELATION_SCAN, SUBSTITUTE_MIN_TEXT, cold_start_chain,
                                         fallback_note, relations, shares_value)
from itemaffinity.service.online import OnlineState, PairRows
from itemaffinity.service.search import LexicalIndex, SemanticSearch
from itemaffinity.service.snapshot import Snapshot
from itemaffinity.text.encoders import catalog_text

log = logging.getLogger(__name__)


SEMANTIC_MIN = 0.3
"""Semantic matches below this cosine are left out of search results (too loose to help)."""


class NotFound(LookupError):
    """An id the snapshot does not know (turned into a 404 problem)."""


class BadRequest(ValueError):
    """A parameter the query cannot use (turned into a 422 problem)."""


@dataclass(frozen=True)
class ItemFilter:
    """Business filters shared by every recommendation endpoint.

    Attributes:
        category: keep items whose catalog category path, or product group, starts with one of these.
        exclude_category: drop items whose category path or product group starts with one of these.
        min_price, max_price: price bounds (items without a price fail any bound).
        exclude: item ids never to return.
    """

    category: tuple[str, ...] = ()
    exclude_category: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    exclude: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.category or self.exclude_category or self.exclude) and \
            self.min_price is None and self.max_price is None

    def mask(self, snap: Snapshot) -> np.ndarray:
        """(n_items,) bool: the items that pass."""
        keep = np.ones(snap.n_items, dtype=bool)
        if self.category or self.exclude_category:
            inc = tuple(c.lower() for c in self.category)
            exc = tuple(c.lower() for c in self.exclude_category)
            for i, keys in enumerate(snap.category_keys):
                if inc and not any(k.startswith(inc) for k in keys):
                    keep[i] = False
                elif exc and any(k.startswith(exc) for k in keys):
                    keep[i] = False
        prices = snap.data.prices
        with np.errstate(invalid="ignore"):
            if self.min_price is not None:
                keep &= prices >= self.min_price
            if self.max_price is not None:
                keep &= prices <= self.max_price
        if self.exclude:
            idx = snap.item_indices(self.exclude)
            keep[idx[idx >= 0]] = False
        return keep


# -- item records -------------------------------------------------------------------------------
def _iso(t: np.datetime64) -> str | None:
    return None if np.isnat(t) else str(t.astype("datetime64[s]")).replace("T", " ")


def item_summary(snap: Snapshot, idx: int) -> dict[str, Any]:
    """item_id, title, price and product group of one item."""
    return {"item_id": snap.data.items.id(idx), "title": snap.title(idx), "price": snap.price(idx),
            "group": snap.group_label[idx]}


def item_detail(snap: Snapshot, online: OnlineState, item_id: str,
                new_products: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The catalog record and statistics of one item (`new_products`: those posted since the snapshot, with the
    baskets posted with them since)."""
    record = (new_products or {}).get(snap.mapping.fold_item_id(item_id)) if snap.item_index(item_id) < 0 else None
    if record is not None:
        baskets = online.new_item_transactions(record["item_id"])
        return {**new_product_summary(record), "description": record.get("description"),
                "category": record.get("category"), "brand": record.get("brand"), "group_id": None,
                "stats": {"baskets": baskets, "users": 0, "events": 0, "returns": 0, "first_seen": None,
                          "last_seen": None, "baskets_online": baskets,
                          "share_of_baskets": baskets / max(online.n_transactions, 1), "popularity_rank": None},
                "partners": len(online.new_item_pairs(record["item_id"])), "bundles": 0, "rules": 0,
                "models": sorted(snap.models),
                "default_model": snap.default_model, "added_since_snapshot": True}
    idx = require_item(snap, item_id)
    d = snap.data
    stored_id = d.items.id(idx)  # as the store holds it (a request may differ in letter case)
    return {**item_summary(snap, idx), "description": snap.descriptions[idx], "category": d.categories[idx],
            "brand": d.brands[idx], "group_id": int(snap.group[idx]) if snap.group[idx] >= 0 else None,
            "stats": {"baskets": online.item_transactions(idx), "users": int(d.item_users[idx]),
                      "events": int(d.item_events[idx]), "returns": int(d.item_returns[idx]),
                      "first_seen": _iso(d.item_first_seen[idx]), "last_seen": _iso(d.item_last_seen[idx]),
                      "baskets_online": int(online.count_delta[idx]),
                      "share_of_baskets": online.item_transactions(idx) / max(online.n_transactions, 1),
                      "popularity_rank": int(np.flatnonzero(snap.popularity_order == idx)[0]) + 1
                      if snap.item_transactions[idx] else None},
            "partners": len(online.pairs(idx)),
            "bundles": len(snap.bundles.by_item.get(idx, ())),
            "rules": len(snap.rules.by_antecedent_item.get(stored_id, ())) + len(snap.rules.by_consequent_item.get(
                stored_id, ())),
            "models": sorted(snap.models), "default_model": snap.default_model, "added_since_snapshot": False}


def require_item(snap: Snapshot, item_id: str) -> int:
    idx = snap.item_index(item_id)
    if idx < 0:
        raise NotFound(f"unknown item {item_id!r}")
    return idx


def search_items(snap: Snapshot, online: OnlineState, lexical: LexicalIndex, semantic: SemanticSearch | None,
                 q: str | None, limit: int, offset: int, new_products: dict[str, dict[str, Any]] | None = None
                 ) -> dict[str, Any]:
    """Product search (or the most bought items when `q` is empty), paginated. Products posted since the snapshot
    (`new_products`) that match the query's words or id come first: a merchandiser looks up what was just added."""
    q = (q or "").strip()
    fresh = list((new_products or {}).values())  # (one C-level copy: the event loop may add to it meanwhile)
    new_hits: list[tuple[dict[str, Any], float]] = []
    if q and fresh:
        hit, lex = LexicalIndex.of([r["item_id"] for r in fresh], [r.get("title") for r in fresh]).search(q)
        new_hits = [(fresh[int(i)], float(v)) for i, v in sorted(zip(hit, lex), key=lambda x: -x[1])]
    match: dict[int, str] = {}
    if not q:
        order = snap.popularity_order
        scores = np.zeros(len(order))
    else:
        hit, lex = lexical.search(q)
        combined = {int(i): float(s) for i, s in zip(hit, lex)}
        match = {i: ("id" if lexical.ids[i] == q.upper() else "title") for i in combined}
        closeness: dict[int, float] = {}  # semantic cosine: orders equally strong lexical matches
        if semantic is not None:
            for item_id, cos in semantic.search(q, 50):
                i = snap.item_index(item_id)
                if i < 0 or cos < SEMANTIC_MIN:
                    continue
                # Semantic matches rank below full lexical matches of the same strength.
                combined[i] = max(combined.get(i, 0.0), 0.95 * cos)
                closeness[i] = cos
                match[i] = match[i] + "+semantic" if i in match else "semantic"
        idx = np.fromiter(combined.keys(), np.int64, len(combined))
        scores = np.fromiter(combined.values(), np.float64, len(combined))
        close = np.array([closeness.get(int(i), 0.0) for i in idx])
        # Of the titles holding every word, those closest in meaning first ("salt": Salt before Salted Butter),
        # then the best sellers.
        order = idx[np.lexsort((-online.transaction_counts()[idx], -close, -scores))] if len(idx) else idx
        scores = np.array([combined[int(i)] for i in order])
    items = [{**new_product_summary(r), "score": v, "match": "new product", "baskets": 0}
             for r, v in new_hits[offset:offset + limit]]
    start = max(offset - len(new_hits), 0)
    end = start + limit - len(items)
    items += [{**item_summary(snap, int(i)), "score": float(s), "match": match.get(int(i), "popular"),
               "baskets": online.item_transactions(int(i))} for i, s in zip(order[start:end], scores[start:end])]
    return {"query": q, "total": len(new_hits) + int(len(order)), "limit": limit, "offset": offset, "items": items,
            "semantic": semantic.kind if semantic is not None else None}


# -- evidence -----------------------------------------------------------------------------------
def pair_counts(snap: Snapshot, online: OnlineState, a: int, b: int) -> tuple[int, int, int, int]:
    """(n_ab, n_a, n_b, n): transactions (baskets, or customers) holding both items, each, and all of them
    (snapshot + online)."""
    csc = snap.transactions_csc
    ba = csc.indices[csc.indptr[a]:csc.indptr[a + 1]]
    bb = csc.indices[csc.indptr[b]:csc.indptr[b + 1]]
    n_ab = len(np.intersect1d(ba, bb, assume_unique=True))
    extra = online.co.get(a)
    if extra:
        n_ab += extra.get(b, 0)
    return n_ab, online.item_transactions(a), online.item_transactions(b), online.n_transactions


def pair_measures(n_ab: int, n_a: int, n_b: int, n: int) -> dict[str, float]:
    """Confidence and lift of a pair; NaN (null in JSON) for a product never bought."""
    args = (np.asarray([n_ab]), np.asarray([n_a]), np.asarray([n_b]), n)
    return {m: float(MEASURES[m](*args)[0]) for m in ("confidence", "lift")}


def _short(title: str | None, item_id: str) -> str:
    return f"{title} ({item_id})" if title else item_id


RELATION_WORDS = {
    "complement": "Shoppers buy them together: a complement.",
    "substitute": "Alike but not bought together more than chance: likely a substitute (one instead of the other).",
    "related": "",
}


def pair_reason(snap: Snapshot, a_name: str, b: int, n_ab: int, confidence: float, lift: float) -> str:
    """"Bought together in N baskets: X% of baskets with A (`a_name`, as `catalog_fields` names it) also have B, L×
    more often than chance." In a store without orders the same of customers: "Both bought by N customers: X% of
    customers with A also have B"."""
    if n_ab == 0:
        return f"Never bought {'in the same basket' if snap.unit == 'basket' else 'by the same customer'} so far."
    b_name = _short(snap.title(b), snap.data.items.id(b))
    times = f"{lift:.1f}× as often as chance would give" if lift >= 1.05 else \
        ("about as often as chance would give" if lift > 0.95 else f"less often than chance ({lift:.2f}×)")
    together = f"Bought together in {snap.count_of(n_ab)}" if snap.unit == "basket" else \
        f"Both bought by {snap.count_of(n_ab)}"
    return f"{together}: {confidence:.0%} of {snap.unit}s with {a_name} also have {b_name}, {times}."


def contributions(snap: Snapshot, online: OnlineState, anchors: Sequence[int], b: int, top: int = 3) -> list[dict[str, Any]]:
    """The anchor items (basket or history) most bought together with item `b`, strongest first."""
    out = []
    for a in anchors:
        if a == b:
            continue
        n_ab, n_a, n_b, n = pair_counts(snap, online, a, b)
        if n_ab == 0:
            continue
        m = pair_measures(n_ab, n_a, n_b, n)
        out.append({"item_id": snap.data.items.id(a), "title": snap.title(a), "co_count": n_ab, **m})
    out.sort(key=lambda c: (-c["co_count"], -c["lift"]))
    return out[:top]


def _group_evidence(snap: Snapshot, a: int, b: int) -> dict[str, Any]:
    same = bool(snap.group[a] >= 0 and snap.group[a] == snap.group[b])
    return {"same_group": same, "group": snap.group_label[b]}


def catalog_fields(snap: Snapshot, a: int) -> dict[str, Any]:
    """Item a's name, category and brand, as `shared_catalog` compares them."""
    d = snap.data
    return {"name": _short(snap.title(a), d.items.id(a)), "category": d.categories[a], "brand": d.brands[a]}


def shared_catalog(snap: Snapshot, query: Sequence[dict[str, Any]], b: int) -> tuple[dict[str, bool | None], str]:
    """Whether item b has the category and the brand of one of the `query` products (`catalog_fields`; None where b
    has none), and a sentence naming them ("" for none): the catalog's part of the evidence."""
    d = snap.data
    facts: dict[str, bool | None] = {}
    said: dict[str, list[str]] = {}  # query product's name → "category (Kitchen > Mugs)", "brand (Acme)"
    for field, values in (("category", d.categories), ("brand", d.brands)):
        mine = values[b]
        match = next((q["name"] for q in query if q.get(field) == mine), None) if mine else None
        facts[f"same_{field}"] = None if not mine else match is not None
        if match is not None:
            said.setdefault(match, []).append(f"{field} ({mine})")
    sentence = "; ".join(" and ".join(fields) + ("" if len(query) == 1 else f" as {name}")
                         for name, fields in said.items())
    return facts, (f"Same {sentence}." if sentence else "")


def _relation(snap: Snapshot, a: int, b: int, n_ab: int, lift: float, text_similarity: float | None,
              model_evidence: dict[str, Any] | None = None) -> str:
    """complement | substitute | related, as the models layer labels a pair."""
    from itemaffinity.models.explain import relation  # (the name is a parameter of the functions below)

    if model_evidence and model_evidence.get("relation"):
        return model_evidence["relation"]
    return relation(n_ab, lift, text_similarity, bool(shares_value(snap.data.categories, a, np.array([b]))[0]))


# -- results ------------------------------------------------------------------------------------
def _model(snap: Snapshot, name: str | None) -> tuple[str, Recommender]:
    name = name or snap.default_model
    if not snap.models:
        raise BadRequest("no model is fitted for this store yet: itemaffinity analyze (or POST /v1/admin/rebuild) "
                         "fits them")
    if name is None or name not in snap.models:
        raise BadRequest(f"model {name!r} is not loaded; loaded models: {', '.join(sorted(snap.models))}")
    return name, snap.models[name]


def _recs_to_idx(snap: Snapshot, item_ids: Sequence[str]) -> np.ndarray:
    return snap.data.items.indices(item_ids)  # a model's own ids: nothing to fold


def _pair_facts(snap: Snapshot, online: OnlineState, a: int, b: int, model_ev: dict[str, Any] | None = None
                ) -> tuple[int, dict[str, float], float | None, str]:
    """Co-count, confidence and lift (snapshot + online), text similarity (None when either has no text) and the
    relation they make."""
    n_ab, n_a, n_b, n = pair_counts(snap, online, a, b)
    m, sim = pair_measures(n_ab, n_a, n_b, n), snap.text_similarity(a, b)
    return n_ab, m, sim, _relation(snap, a, b, n_ab, m["lift"], sim, model_ev)


RELATION_CHUNK = 200
"""Items of a ranking whose relations a relation filter works out at once."""


def _pair_relations(snap: Snapshot, a: int, b: np.ndarray, n_ab: np.ndarray, lift: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The relation of item a to each item of b from the pairs' co-counts and lifts, as `_relation` labels one
    pair, and the pairs' text similarities (NaN: no text)."""
    b = np.asarray(b, np.int64)
    sims = snap.text_similarities(np.full(len(b), a), b)
    same_category = shares_value(snap.data.categories, a, b)
    return relations(np.asarray(n_ab), np.asarray(lift, np.float64), sims, same_category), sims


def _relations_to(snap: Snapshot, online: OnlineState, a: int, b: np.ndarray,
                  model_evidence: list[dict[str, Any] | None] | None = None) -> Iterator[np.ndarray]:
    """The relation of item a to each item of b, as `_pair_facts` labels one pair (snapshot + online counts; a
    model's own relation first), RELATION_CHUNK items at a time: a relation filter stops once it has enough, and
    may walk RELATION_SCAN items for a rare relation. The item's co-counts are read once for all chunks."""
    counts, co = online.transaction_counts(), online.co_row(a)
    for s in range(0, len(b), RELATION_CHUNK):
        part = b[s:s + RELATION_CHUNK]
        lift = MEASURES["lift"](co[part], np.full(len(part), counts[a]), counts[part], online.n_transactions)
        found = _pair_relations(snap, a, part, co[part], lift)[0]
        for k, ev in enumerate((model_evidence or [])[s:s + RELATION_CHUNK]):
            if ev and ev.get("relation"):
                found[k] = ev["relation"]
        yield found


def similar(snap: Snapshot, online: OnlineState, item_id: str, *,
            model: str | None, n: int, filt: ItemFilter, explain: bool, relation: str | None = None,
            semantic: SemanticSearch | None = None, new_products: dict[str, dict[str, Any]] | None = None
            ) -> dict[str, Any]:
    """Items a model finds most similar to `item_id` (substitutes / alternatives), optionally only those in
    one relation to it ("instead of": substitute; "goes with": complement). Where the model has nothing on the
    product (fitted before it was added, or no score for a product never bought) and for a product posted to the
    catalog since the snapshot (`new_products`), the cold-start chain answers (`cold_start_neighbours`)."""
    a = snap.item_index(item_id)
    if a < 0:
        record = (new_products or {}).get(snap.mapping.fold_item_id(item_id))
        if record is None:
            raise NotFound(f"unknown item {item_id!r}")
        if model is not None:
            _model(snap, model)  # an unknown name is refused as for any product
        return new_product_similar(snap, online, semantic, record, n=n, filt=filt, explain=explain,
                                   relation=relation)
    item_id = snap.data.items.id(a)  # as the store holds it (a request may differ in letter case)
    name, rec = _model(snap, model)
    depth = RELATION_SCAN if relation else (n if filt.empty else rec.n_items_)
    out = rec.similar_items([item_id], n=depth)[0]
    if len(out):
        return similar_body(snap, item_id, name, out, n, filt, online, explain=explain, relation=relation)
    idx, scores, kind = cold_start_neighbours(snap, semantic, [item_text(snap, a)], [snap.data.categories[a]],
                                              min(depth, RELATION_SCAN), items=[a])
    out = Recs(tuple(snap.data.items.ids_of(idx)), scores)
    body = similar_body(snap, item_id, name, out, n, filt, online, explain=explain, relation=relation, fallback=kind)
    note = fallback_note(name, kind, known=rec.items_.index(item_id) >= 0, bought=bool(snap.item_transactions[a]))
    return {**body, "fallback": kind, "note": note}


COLD_START_QUERIES = 10
"""Most products of a basket or history (and as many posted since the snapshot) the cold-start chain searches by
text (encoded in one batch; each is still a search over the catalog)."""


def cold_start_neighbours(snap: Snapshot, semantic: SemanticSearch | None, texts: Sequence[str],
                          categories: Sequence[str | None], depth: int, items: Sequence[int] = ()
                          ) -> tuple[np.ndarray, np.ndarray, str]:
    """`explain.cold_start_chain` over the snapshot, its text step by the service's text search (the largest
    cosine to one of `texts`), else by the snapshot's TF-IDF. `items`: the query's products in the snapshot."""
    texts = [t for t in texts if t]
    idx, scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
    if texts and semantic is not None:
        best: dict[int, float] = {}
        for hits in semantic.search_batch(texts, depth + len(items)):  # encoded together: most of a search
            for i, cos in zip(snap.item_indices([h for h, _ in hits]).tolist(), (c for _, c in hits)):
                best[i] = max(best.get(i, cos), cos)
        idx = np.fromiter(best, np.int64, len(best))
        scores = np.fromiter(best.values(), np.float32, len(best))
    elif texts:
        sims = np.nan_to_num(snap.text_similarities_to(texts)).astype(np.float32)
        idx = np.argsort(-sims, kind="stable")[:depth + len(items)]
        scores = sims[idx]
    return cold_start_chain(idx, scores, snap.data.categories, snap.item_transactions, categories, depth, items)


def record_alike(snap: Snapshot, record: dict[str, Any], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How alike a product posted since the snapshot is to the snapshot's items `idx`, as its relations are
    labelled: the text similarity (the snapshot's TF-IDF cosine, as for every pair; NaN without a text) and a
    shared category."""
    text = record_text(record)
    sims = snap.text_similarities_to([text])[idx] if text and len(idx) else np.full(len(idx), np.nan)
    same_category = np.asarray(snap.data.categories, dtype=object)[idx] == record.get("category") \
        if record.get("category") else np.zeros(len(idx), bool)
    return sims, same_category


def new_product_similar(snap: Snapshot, online: OnlineState, semantic: SemanticSearch | None,
                        record: dict[str, Any], *, n: int, filt: ItemFilter, explain: bool,
                        relation: str | None) -> dict[str, Any]:
    """Similar items of a product posted to the catalog since the snapshot: no model knows it, so the cold-start
    chain answers. Its relation to a neighbour is labelled as every pair's, from the baskets posted with it and how
    alike they are (the snapshot's TF-IDF cosine, a shared category)."""
    depth = RELATION_SCAN if relation or not filt.empty else n
    text = record_text(record)
    idx, scores, kind = cold_start_neighbours(snap, semantic, [text], [record.get("category")], depth)
    if not filt.empty:
        keep = filt.mask(snap)[idx]
        idx, scores = idx[keep], scores[keep]
    sims, same_category = record_alike(snap, record, idx)
    query = [{**record, "name": _short(record.get("title"), record["item_id"])}]
    baskets = online.new_item_transactions(record["item_id"])
    co = online.new_item_co_row(record["item_id"])[idx]
    lift = MEASURES["lift"](co, baskets, online.transaction_counts()[idx], online.n_transactions) if baskets \
        else np.full(len(idx), np.nan)
    found = relations(co, lift, sims, same_category)
    if relation is not None:
        keep = found == relation
        idx, scores, sims, found, co, lift = idx[keep], scores[keep], sims[keep], found[keep], co[keep], lift[keep]
    name = record.get("title") or record["item_id"]
    why = "no model knows it yet" if baskets else "nothing was bought with it yet"
    items = []
    for b, score, sim, rel, n_ab, pair_lift in list(zip(idx, scores, sims, found, co, lift))[:n]:
        row = {**item_summary(snap, int(b)), "score": float(score)}
        if explain:
            shared, same = shared_catalog(snap, query, int(b))
            words = [f"{name} was added to the catalog after the live snapshot and {why}, so the answer is "
                     f"{FALLBACK_SOURCES[kind]}" + (f" (text search score {score:.2f})." if kind == "text" else "."),
                     same, RELATION_WORDS[str(rel)]]
            row["evidence"] = {"model": None, "model_score": None, "co_count": int(n_ab), "confidence": None,
                               "lift": None if np.isnan(pair_lift) else float(pair_lift),
                               "text_similarity": None if np.isnan(sim) else float(sim), "relation": str(rel),
                               **shared, "reason": " ".join(w for w in words if w)}
        items.append(row)
    source = (semantic.kind if semantic is not None else "tfidf") if kind == "text" else kind
    return {"item": new_product_summary(record), "model": source, "items": items,
            "fallback": kind, "note": (f"this product was added to the catalog after the live snapshot and {why}; "
                                       f"shown instead: {FALLBACK_SOURCES[kind]}. The next rebuild "
                                       "(POST /v1/admin/rebuild) serves it from the models")}


def item_text(snap: Snapshot, a: int) -> str:
    """Item a's catalog text (title, description, category, brand), as the cold-start chain searches by it."""
    d = snap.data
    return catalog_text(d.titles[a], snap.descriptions[a], d.categories[a], d.brands[a])


def record_text(record: dict[str, Any]) -> str:
    """`item_text` of a product posted since the snapshot, from its catalog row."""
    return catalog_text(record.get("title"), record.get("description"), record.get("category"), record.get("brand"))


def new_product_summary(record: dict[str, Any]) -> dict[str, Any]:
    """`item_summary` of a product posted since the snapshot (no product group yet)."""
    return {"item_id": record["item_id"], "title": record.get("title"), "price": record.get("price"), "group": None}


def similar_body(snap: Snapshot, item_id: str, model: str, out: Recs, n: int, filt: ItemFilter,
                 online: OnlineState | None = None, *, explain: bool = False, relation: str | None = None,
                 fallback: str | None = None) -> dict[str, Any]:
    """The `similar` answer from a model's ranking of `item_id`'s neighbours, or from the cold-start chain's
    (`fallback`, its step): with the evidence (`explain`), and only the items in `relation` to it; both read
    `online`'s co-counts."""
    a = snap.item_index(item_id)
    idx = _recs_to_idx(snap, out.item_ids)
    pos = np.flatnonzero(idx >= 0)
    if not filt.empty:
        pos = pos[filt.mask(snap)[idx[pos]]]
    if relation is not None:  # labelled a chunk at a time: a common relation fills n from the first chunk
        evidence = [out.evidence[p] for p in pos] if out.evidence is not None else None
        kept = [pos[:0]]
        for s, found in zip(range(0, len(pos), RELATION_CHUNK), _relations_to(snap, online, a, idx[pos], evidence)):
            kept.append(pos[s:s + RELATION_CHUNK][found == relation])
            if sum(map(len, kept)) >= n:
                break
        pos = np.concatenate(kept)
    items = []
    for p in pos[:n]:
        b = int(idx[p])
        row = {**item_summary(snap, b), "score": float(out.scores[p])}
        if explain:
            facts = _pair_facts(snap, online, a, b, out.evidence[p] if out.evidence is not None else None)
            row["evidence"] = similar_evidence(snap, a, b, model, float(out.scores[p]), facts, fallback)
        items.append(row)
    return {"item": item_summary(snap, a), "model": model, "items": items}


def similar_evidence(snap: Snapshot, a: int, b: int, model: str, score: float,
                     facts: tuple[int, dict[str, float], float | None, str], fallback: str | None = None
                     ) -> dict[str, Any]:
    """Why b is among a's similar items, from the pair's `_pair_facts` (`fallback`: the cold-start chain's step
    that found it, as the model had nothing on a)."""
    n_ab, m, sim, relation = facts
    catalog, same_catalog = shared_catalog(snap, [catalog_fields(snap, a)], b)
    ev: dict[str, Any] = {"model": model, "model_score": None if fallback else score, "co_count": n_ab, **m,
                          **_group_evidence(snap, a, b), **catalog,
                          "contributing": [{"item_id": snap.data.items.id(a), "title": snap.title(a),
                                            "co_count": n_ab, **m}]}
    parts = [f"The {model} model has nothing on this product, so the answer is {FALLBACK_SOURCES[fallback]}"
             + (f" (text search score {score:.2f})." if fallback == "text" else ".")
             if fallback else f"The {model} model ranks it among the most similar products (score {score:.3g})."]
    if ev["same_group"]:
        parts.append(f"Both are in the product group \u201c{snap.group_label[b]}\u201d.")
    parts.append(same_catalog)
    if sim is not None:
        ev["text_similarity"] = sim
    if sim is not None and not fallback:  # (a fallback's first sentence says it is by text)
        if not snap.item_transactions[a]:  # a new product: its text and category are all there is to go by
            parts.append(f"{snap.title(a) or snap.data.items.id(a)} has not been bought yet, so the answer comes "
                         f"from its text and category (text similarity {sim:.2f}).")
        elif sim >= SUBSTITUTE_MIN_TEXT:
            parts.append(f"Their names are alike (text similarity {sim:.2f}).")
    parts.append(pair_reason(snap, catalog_fields(snap, a)["name"], b, n_ab, m["confidence"], m["lift"]))
    ev["relation"] = relation
    if RELATION_WORDS.get(relation):
        parts.append(RELATION_WORDS[relation])
    ev["reason"] = " ".join(p for p in parts if p)
    return ev


def bought_together(snap: Snapshot, online: OnlineState, item_id: str, *,
                    n: int, filt: ItemFilter, explain: bool, n_bundles: int = 5,
                    relation: str | None = None) -> dict[str, Any]:
    """Complements from pair statistics (shrunk lift), optionally only those in one relation to the item, and
    bundles from frequent itemsets."""
    a = require_item(snap, item_id)
    rows = online.pairs(a)
    pos = np.arange(len(rows))
    if not filt.empty:
        pos = pos[filt.mask(snap)[rows.partner]]

    if relation is not None or explain:
        found, sims = _pair_relations(snap, a, rows.partner[pos], rows.n_ab[pos], rows.lift[pos])
        if relation is not None:
            keep = found == relation
            pos, found, sims = pos[keep], found[keep], sims[keep]
    else:
        found = sims = None
    query = {**catalog_fields(snap, a), "item_id": item_id, "title": snap.title(a)}
    items = partner_items(snap, rows, pos[:n], found, sims, query, lambda b: _group_evidence(snap, a, b), explain)
    return {"item": item_summary(snap, a), "items": items, "bundles": bundles(snap, a, filt, n_bundles),
            "baskets": online.n_transactions, "online_changes": online.item_generation(a)}


def partner_items(snap: Snapshot, rows: PairRows, pos: np.ndarray, found: np.ndarray | None,
                  sims: np.ndarray | None, query: dict[str, Any], group_of: Callable[[int], dict[str, Any]],
                  explain: bool) -> list[dict[str, Any]]:
    """The bought-together items at `pos` of the `query` product's partner `rows`, with their evidence where
    `explain`: the pair's counts and measures, the product group (`group_of`), the catalog fields they share
    (`query`: `catalog_fields` with its item_id and title; a product posted since the snapshot, its catalog row),
    and the relations `found` and text similarities `sims` (aligned with pos)."""
    items = []
    for k, p in enumerate(pos):
        b = int(rows.partner[p])
        row = {**item_summary(snap, b), "score": float(rows.shrunk_lift[p])}
        if explain:
            n_ab, conf, lift = int(rows.n_ab[p]), float(rows.confidence[p]), float(rows.lift[p])
            catalog, same_catalog = shared_catalog(snap, [query], b)
            ev = {"co_count": n_ab, "item_baskets": int(rows.n_a[p]), "partner_baskets": int(rows.n_b[p]),
                  "confidence": conf, "lift": lift, "shrunk_lift": float(rows.shrunk_lift[p]), **group_of(b),
                  **catalog, "contributing": [{"item_id": query["item_id"], "title": query["title"], "co_count": n_ab,
                                               "confidence": conf, "lift": lift}],
                  "reason": " ".join(w for w in (pair_reason(snap, query["name"], b, n_ab, conf, lift), same_catalog)
                                     if w)}
            if not np.isnan(sims[k]):
                ev["text_similarity"] = float(sims[k])
            ev["relation"] = str(found[k])
            row["evidence"] = ev
        items.append(row)
    return items


def new_product_bought_together(snap: Snapshot, online: OnlineState, item_id: str,
                                new_products: dict[str, dict[str, Any]], *, n: int, filt: ItemFilter,
                                explain: bool, relation: str | None = None) -> dict[str, Any]:
    """`bought_together` of a product posted since the snapshot: its partners in the baskets posted with it since
    (`OnlineState.new_item_pairs`), with the same measures, relations and evidence; bundles wait for a rebuild."""
    record = new_products.get(snap.mapping.fold_item_id(item_id))
    if record is None:
        raise NotFound(f"unknown item {item_id!r}")
    rows = online.new_item_pairs(record["item_id"])
    pos = np.arange(len(rows))
    if not filt.empty:
        pos = pos[filt.mask(snap)[rows.partner]]
    partner = rows.partner[pos]
    sims, same_category = record_alike(snap, record, partner)
    found = relations(rows.n_ab[pos], rows.lift[pos].astype(np.float64), sims, same_category)
    if relation is not None:
        keep = found == relation
        pos, sims, found = pos[keep], sims[keep], found[keep]
    query = {**record, "title": record.get("title"), "name": _short(record.get("title"), record["item_id"])}
    items = partner_items(snap, rows, pos[:n], found, sims, query,
                          lambda b: {"same_group": False, "group": snap.group_label[b]}, explain)
    baskets = online.new_item_transactions(record["item_id"])
    return {"item": new_product_summary(record), "items": items, "bundles": [], "baskets": online.n_transactions,
            "online_changes": baskets,
            "note": f"this product was added to the catalog after the live snapshot: its partners come from the "
                    f"{snap.count_of(baskets)} posted with it since (a partner must be in {online.min_count} of them); "
                    f"bundles, and its place in other products' lists, come with the next rebuild (POST "
                    f"/v1/admin/rebuild)"}


def bundles(snap: Snapshot, a: int, filt: ItemFilter, n: int) -> list[dict[str, Any]]:
    """The item's best bundles (frequent itemsets holding it), other members passing the filters."""
    b = snap.bundles
    ids = b.by_item.get(a, np.zeros(0, np.int64))
    keep = None if filt.empty else filt.mask(snap)
    out = []
    n_tx = snap.pairs.n_transactions
    for k in ids:
        members = b.members[int(k)]
        if keep is not None and not all(keep[i] for i in members if i != a):
            continue
        count, lift = int(b.count[k]), float(b.lift[k])
        names = ", ".join(_short(snap.title(i), snap.data.items.id(i)) for i in members)
        out.append({"items": [item_summary(snap, i) for i in members], "support": float(b.support[k]),
                    "count": count, "lift": lift,
                    "reason": (f"These {len(members)} products ({names}) were "
                               f"{'bought together in' if snap.unit == 'basket' else 'all bought by'} {snap.count_of(count)} "
                               f"({count / max(n_tx, 1):.1%} of all {snap.unit}s), {lift:.1f}× as often as if they "
                               f"were unrelated.")})
        if len(out) >= n:
            break
    return out


def _rules_for_basket(snap: Snapshot, basket_ids: set[str]) -> dict[str, tuple[int, float]]:
    """consequent item id → (rule row, confidence) of the most confident rule A → C with A ⊆ basket."""
    rules = snap.rules
    cand: set[int] = set()
    for i in basket_ids:
        cand.update(rules.by_antecedent_item.get(i, np.zeros(0, np.int64)).tolist())
    best: dict[str, tuple[int, float]] = {}
    conf = rules.metrics["confidence"]
    for r in cand:
        if not set(rules.antecedent[r]) <= basket_ids:
            continue
        for c in rules.consequent[r]:
            if c not in basket_ids and (c not in best or conf[r] > best[c][1]):
                best[c] = (r, float(conf[r]))
    return best


def recommend(snap: Snapshot, online: OnlineState, *, model: str | None, n: int, filt: ItemFilter, explain: bool,
              user_id: str | None = None, history: Sequence[str] | None = None, mode: str = "history",
              semantic: SemanticSearch | None = None, new_products: dict[str, dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """Recommendations for a known user (its history plus posted events) or an item list. Where the model knows
    nothing of the query, the cold-start chain answers from the texts and categories of its products, those posted
    to the catalog since the snapshot (`new_products`) included (`cold_start_neighbours`; `fallback` says which
    step).

    Args:
        mode: "basket" (complete a basket: reasons name rules and items bought together) or
            "history" (a shopper's history).
    """
    name, rec = _model(snap, model)
    fallback = None
    unknown: list[str] = []
    if user_id is not None:
        hist = online.user_history(user_id)
        anchors = sorted(hist, key=lambda i: -hist[i])
        ids = snap.data.items.ids_of(np.asarray(anchors, np.int64)) if anchors else []
        query_ids = list(ids)
    else:
        query_ids = list(dict.fromkeys(snap.mapping.fold_item_id(i) for i in history or []))
        known = snap.data.items.indices(query_ids)  # folded once, above
        unknown = [i for i, k in zip(query_ids, known) if k < 0]
        anchors = [int(k) for k in known if k >= 0]
    k = n if filt.empty else rec.n_items_
    out = None
    if anchors:
        if user_id is not None and not online.has_online_history(user_id) and user_id in rec.users_:
            out = rec.recommend(user_id, n=k)
        else:
            out = rec.recommend(history=query_ids, n=k)
    seen = set(anchors)
    posted = [new_products[i] for i in unknown if i in (new_products or {})][:COLD_START_QUERIES]
    text_sims = None  # the fallback's TF-IDF cosines to the query's texts, for its evidence
    if out is None or out.fallback:  # nothing the model knows of (e.g. products never bought)
        d = snap.data
        first = anchors[:COLD_START_QUERIES]
        texts = [item_text(snap, a) for a in first] + [record_text(r) for r in posted]
        categories = [d.categories[a] for a in first] + [r.get("category") for r in posted]
        idx, scores, fallback = cold_start_neighbours(snap, semantic, texts, categories,
                                                      n if filt.empty else RELATION_SCAN, items=anchors)
        keep = np.arange(len(idx)) if filt.empty else np.flatnonzero(filt.mask(snap)[idx])
        picked = [(int(idx[p]), float(scores[p]), None) for p in keep[:n]]
        text_sims = snap.text_similarities_to(texts) if explain and any(texts) else None
    else:
        idx = _recs_to_idx(snap, out.item_ids)
        pos = np.flatnonzero(idx >= 0)
        if not filt.empty:
            pos = pos[filt.mask(snap)[idx[pos]]]
        picked = []
        for p in pos:
            if int(idx[p]) in seen:
                continue
            picked.append((int(idx[p]), float(out.scores[p]), out.evidence[p] if out.evidence is not None else None))
            if len(picked) >= n:
                break
    rules = _rules_for_basket(snap, set(snap.data.items.ids_of(np.asarray(anchors, np.int64)))) \
        if explain and mode == "basket" and anchors else {}
    items = []
    for b, score, model_ev in picked:
        row = {**item_summary(snap, b), "score": score}
        if explain:
            row["evidence"] = fallback_evidence(
                snap, name, score, mode, fallback, bool(anchors), bool(posted),
                None if text_sims is None else text_sims[b]) if fallback else recommend_evidence(
                snap, online, anchors, b, name, score, model_ev, rules, mode, by_text=rec.ranks_by_text)
        items.append(row)
    return {"model": name, "items": items, "unknown_items": unknown, "fallback": fallback,
            "history_size": len(anchors)}


def fallback_evidence(snap: Snapshot, model: str, score: float, mode: str, fallback: str, known: bool,
                      posted: bool, text_similarity: float | None) -> dict[str, Any]:
    """Why a recommendation of the cold-start chain (`fallback`, its step) is shown: the query had products the
    model has nothing on (`known`), products added since the snapshot (`posted`), or none; `text_similarity`: its
    largest TF-IDF cosine to their texts."""
    where = "this basket" if mode == "basket" else "their history"
    nothing = (f"The {model} model has nothing to go on for the items in {where} yet" if known else
               f"The items in {where} were added to the catalog after the live snapshot" if posted else
               "Nothing to go on yet")
    ev: dict[str, Any] = {"model": None, "model_score": None, "contributing": []}
    if text_similarity is not None and not np.isnan(text_similarity):
        ev["text_similarity"] = float(text_similarity)
    if fallback == "text":
        what = f"one of the products whose texts are most like theirs (text search score {score:.2f})"
    else:
        what = (f"one of the most bought products of their categories ({snap.count_of(int(score))})"
                if fallback == "category" else f"one of the most bought products ({snap.count_of(int(score))})")
    return {**ev, "reason": f"{nothing}, so this is {what}."}


def recommend_evidence(snap: Snapshot, online: OnlineState, anchors: Sequence[int], b: int, model: str,
                       score: float, model_ev: dict[str, Any] | None, rules: dict[str, tuple[int, float]],
                       mode: str, by_text: bool = False) -> dict[str, Any]:
    """Why b is recommended for `anchors`; `by_text`: the model ranks by text (`Recommender.ranks_by_text`)."""
    contrib = contributions(snap, online, anchors[:50], b)
    ev: dict[str, Any] = {"model": model, "model_score": score, "contributing": contrib}
    parts = []
    item_id = snap.data.items.id(b)
    if item_id in rules:
        r, conf = rules[item_id]
        ante = ", ".join(_short(snap.title(snap.item_index(i)), i) for i in snap.rules.antecedent[r])
        lift = float(snap.rules.metrics["lift"][r])
        ev["rule"] = {"antecedent": list(snap.rules.antecedent[r]), "consequent": list(snap.rules.consequent[r]),
                      "confidence": conf, "lift": lift}
        parts.append(f"Rule: {conf:.0%} of {snap.unit}s with {ante} also have it ({lift:.1f}× chance).")
    if contrib:
        c = contrib[0]
        ev.update(co_count=c["co_count"], lift=c["lift"], confidence=c["confidence"])
        who = "this basket" if mode == "basket" else "their history"
        shared = "in" if snap.unit == "basket" else "by"
        names = "; ".join(f"{_short(x['title'], x['item_id'])} {shared} {snap.count_of(x['co_count'])} "
                          f"({x['lift']:.1f}× chance)" for x in contrib)
        parts.append(f"Bought together with items in {who}: {names}." if snap.unit == "basket" else
                     f"Bought by the customers of items in {who}: {names}.")
    else:
        where = "basket" if mode == "basket" else "history"
        alike = _most_alike(snap, anchors[:50], b, min_text=-1.0 if by_text else SUBSTITUTE_MIN_TEXT)
        like = None
        if alike is not None:  # a product nobody has bought with them, e.g. a new one: its name says why
            a, ev["text_similarity"] = alike
            like = f"{_short(snap.title(a), snap.data.items.id(a))}'s (text similarity {alike[1]:.2f})"
        if by_text:
            parts.append(f"No item in the {where} was bought with it yet; the {model} model ranks products by how "
                         "alike their texts are" + (f", and its name is most like {like}." if like else "."))
        elif like:
            parts.append(f"No item in the {where} was bought with it yet; its name is like {like}.")
        else:
            parts.append(f"No item in the {where} was bought with it directly; the {model} model links them "
                         "indirectly, through other products or similar shoppers.")
    if contrib:
        top = snap.item_index(contrib[0]["item_id"])
        ev["relation"] = _relation(snap, top, b, contrib[0]["co_count"], contrib[0]["lift"],
                                   snap.text_similarity(top, b), model_ev)
    facts, sentence = shared_catalog(snap, [catalog_fields(snap, x) for x in anchors[:50]], b)
    ev.update(facts)
    ev["reason"] = " ".join(parts + ([sentence] if sentence else []))
    return ev


def _most_alike(snap: Snapshot, anchors: Sequence[int], b: int, min_text: float) -> tuple[int, float] | None:
    """The anchor whose text is most like item b's, and the cosine, when it reaches `min_text`."""
    sims = snap.text_similarities(np.asarray(anchors), np.full(len(anchors), b))
    if np.isnan(sims).all():  # (no anchors, or none with text)
        return None
    best = int(np.nanargmax(sims))
    return (int(anchors[best]), float(sims[best])) if sims[best] >= min_text else None


# -- rules, segments, data quality ----------------------------------------------------------------
RULE_SORTS = ("lift", "confidence", "support", "leverage", "conviction")


def list_rules(snap: Snapshot, *, antecedent: str | None, consequent: str | None, category: str | None,
               min_support: float, min_confidence: float, min_lift: float | None, sort: str,
               limit: int, offset: int, item: str | None = None) -> dict[str, Any]:
    """Association rules with filters (`item`: on either side), sorted (descending, then by support), paginated."""
    rules, fold = snap.rules, snap.mapping.fold_item_id
    empty = np.zeros(0, np.int64)
    sel = np.arange(len(rules))
    if item:
        sel = np.union1d(rules.by_antecedent_item.get(fold(item), empty),
                         rules.by_consequent_item.get(fold(item), empty))
    if antecedent:
        sel = np.intersect1d(sel, rules.by_antecedent_item.get(fold(antecedent), empty))
    if consequent:
        sel = np.intersect1d(sel, rules.by_consequent_item.get(fold(consequent), empty))
    m = rules.metrics
    keep = (m["support"][sel] >= min_support) & (m["confidence"][sel] >= min_confidence)
    if min_lift is not None:
        keep &= m["lift"][sel] >= min_lift
    sel = sel[keep]
    if category:
        pass_mask = ItemFilter(category=(category,)).mask(snap)
        sel = np.asarray([r for r in sel if all(
            (i := snap.item_index(c)) >= 0 and pass_mask[i] for c in rules.consequent[r])], np.int64)
    order = sel[np.lexsort((sel, -m["support"][sel], -m[sort][sel]))] if len(sel) else sel
    page = order[offset:offset + limit]

    def side(ids: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{**item_summary(snap, i)} if (i := snap.item_index(x)) >= 0 else
                {"item_id": x, "title": None, "price": None, "group": None} for x in ids]

    items = []
    for r in page:
        ante, cons = side(rules.antecedent[r]), side(rules.consequent[r])
        vals = {k: float(m[k][r]) for k in RULE_SORTS}
        a_names = ", ".join(_short(x["title"], x["item_id"]) for x in ante)
        c_names = ", ".join(_short(x["title"], x["item_id"]) for x in cons)
        items.append({"antecedent": ante, "consequent": cons, **vals,
                      "reason": (f"{vals['confidence']:.0%} of {snap.unit}s with {a_names} also have {c_names} — "
                                 f"{vals['lift']:.1f}× as often as chance; {vals['support']:.1%} of all {snap.unit}s "
                                 f"hold all of them.")})
    return {"total": int(len(order)), "limit": limit, "offset": offset, "sort": sort, "items": items}


REJECT_REASONS = {
    "malformed_line": "The line could not be split into fields (wrong number of columns or broken quoting).",
    "repeated_header": "The row repeats the column names (files joined end to end, each with its header).",
    "missing_item_id": "The row has no product id.",
    "nested_item_id": "The product id is a list or an object (an order's products in one JSON field): name the "
                      "list to explode (--explode, explode in a mapping file) or write one line per product.",
    "missing_basket_and_user": "The row has neither a basket/order id nor a customer id.",
    "bad_timestamp": "The date/time could not be read.",
    "bad_quantity": "The quantity is not a number.",
    "bad_price": "The price is not a number.",
    "bad_value": "The value is not a number.",
    "unknown_event": "The event type is not one of view, click, fav, cart, purchase, return, rating.",
    "non_product_code": "The code is not a product (postage, fees, discounts, manual adjustments …).",
    "unknown_item": "The product is not in the catalog.",
    "non_positive_price": "The price is zero or negative (free samples, adjustments).",
    "non_positive_quantity": "The quantity is zero or negative.",
    "duplicate_line": "The same line appears more than once in the same file or batch.",
    "already_in_store": "The same event was already stored by an earlier file or batch.",
    "duplicate_item": "The catalog lists the same product id more than once.",
}


def data_quality(snap: Snapshot, api_rejects: dict[str, int]) -> dict[str, Any]:
    """Rejected rows by reason and by source (store at snapshot time plus rows posted since)."""
    by_reason: dict[str, int] = {}
    for _, reason, n in snap.rejects:
        by_reason[reason] = by_reason.get(reason, 0) + n
    for reason, n in api_rejects.items():
        by_reason[reason] = by_reason.get(reason, 0) + n
    sources: dict[str, int] = {}
    for source, _, n in snap.rejects:
        sources[source] = sources.get(source, 0) + n
    if api_rejects:
        sources["api (since snapshot)"] = sum(api_rejects.values())
    reasons = [{"reason": r, "rows": n, "description": REJECT_REASONS.get(r, r.replace("_", " "))}
               for r, n in sorted(by_reason.items(), key=lambda kv: -kv[1])]
    events = int(snap.data.item_events.sum())
    return {"total_rejected": sum(by_reason.values()), "events_in_snapshot": events, "by_reason": reasons,
            "by_source": [{"source": s, "rows": n} for s, n in sorted(sources.items(), key=lambda kv: -kv[1])]}
