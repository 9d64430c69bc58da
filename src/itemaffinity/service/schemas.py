"""Request and response bodies of the REST API (pydantic; requests forbid unknown fields)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

ItemId = Annotated[str, Field(min_length=1, max_length=200, description="External item id (e.g. a SKU).")]
Scalar = StrictStr | StrictInt | StrictFloat | None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class ProblemOut(_Response):
    """An RFC 7807 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


# -- items --------------------------------------------------------------------------------------
class ItemSummary(_Response):
    item_id: str
    title: str | None = None
    price: float | None = None
    group: str | None = Field(default=None, description="Product group found by clustering co-purchases.")


class Contribution(_Response):
    item_id: str
    title: str | None = None
    co_count: int = Field(description="Baskets holding both this item and the recommended one.")
    confidence: float | None = None
    lift: float | None = None


class Evidence(_Response):
    """Why an item is shown; `reason` says it in plain words."""

    reason: str
    contributing: list[Contribution] = []
    co_count: int | None = None
    lift: float | None = None
    confidence: float | None = None
    text_similarity: float | None = None
    same_group: bool | None = None
    same_category: bool | None = Field(default=None, description="It has the category of the product (of one of the "
                                       "query's products); null where it has none.")
    same_brand: bool | None = Field(default=None, description="The same for the brand.")
    relation: str | None = Field(default=None, description="complement or substitute, when the model says.")
    model: str | None = None
    model_score: float | None = None
    rule: dict[str, Any] | None = None


class ItemResult(ItemSummary):
    score: float
    evidence: Evidence | None = None


class SearchHit(ItemSummary):
    score: float
    match: str = Field(description="id, title, semantic, title+semantic, popular (empty query), or new product "
                                   "(posted to the catalog since the snapshot: matched by its id or title).")
    baskets: int


class SearchOut(_Response):
    query: str
    total: int
    limit: int
    offset: int
    items: list[SearchHit]
    semantic: str | None = Field(description="The text search layer in use (sentence, tfidf) or null.")


class ItemStats(_Response):
    baskets: int
    users: int
    events: int
    returns: int
    first_seen: str | None
    last_seen: str | None
    baskets_online: int
    share_of_baskets: float
    popularity_rank: int | None = Field(description="1 for the best seller; null for a product not bought in the "
                                                   "snapshot (or added since).")


class ItemDetailOut(ItemSummary):
    description: str | None = None
    category: str | None = None
    brand: str | None = None
    group_id: int | None = None
    stats: ItemStats
    partners: int
    bundles: int
    rules: int
    models: list[str]
    default_model: str | None
    added_since_snapshot: bool = Field(default=False, description="Posted to the catalog after the live snapshot: "
                                       "no statistics yet, similar items from its text until the next rebuild.")


class SimilarOut(_Response):
    item: ItemSummary
    model: str = Field(description="The model asked for (else the default); for a product posted since the snapshot, "
                                   "which no model knows yet, what answered: the text search (e.g. sentence+tfidf), "
                                   "'category' or 'popular'.")
    items: list[ItemResult]
    fallback: str | None = Field(default=None, description="The model has nothing on this product (never bought, or "
                                 "newer than the model or the snapshot), so the items come from the cold-start chain: "
                                 "'text' (the closest texts), 'category' (its category's best sellers) or 'popular'.")
    note: str | None = Field(default=None, description="Why the model had nothing on the product, in words.")


class BundleOut(_Response):
    items: list[ItemSummary]
    support: float
    count: int
    lift: float
    reason: str


class BoughtTogetherOut(_Response):
    item: ItemSummary
    items: list[ItemResult]
    bundles: list[BundleOut]
    baskets: int = Field(description="Baskets the counts are out of (customers where /health's unit is customer).")
    online_changes: int = Field(description="Posted-basket updates folded into this item's list since the snapshot "
                                "(for a product added since: the baskets posted with it).")
    note: str | None = Field(default=None, description="A product added since the snapshot: where its partners come "
                             "from until the next rebuild.")


class RecsOut(_Response):
    model: str
    items: list[ItemResult]
    unknown_items: list[str] = []
    fallback: str | None = Field(default=None, description="The model knew nothing of the query (no known item, or "
                                 "none it has a score for: products nobody has bought yet, for a co-purchase model), "
                                 "so the cold-start chain answers from its products: 'text' (the closest texts), "
                                 "'category' (their categories' best sellers) or 'popular' (the best sellers).")
    history_size: int
    user: dict[str, Any] | None = None


class FilterFields(_Request):
    """Business filters for POSTed recommendation requests (same meaning as the query parameters)."""

    category: list[Annotated[str, Field(max_length=200)]] = Field(default=[], max_length=50)
    exclude_category: list[Annotated[str, Field(max_length=200)]] = Field(default=[], max_length=50)
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    exclude: list[ItemId] = Field(default=[], max_length=1000)


class BasketIn(FilterFields):
    items: list[ItemId] = Field(min_length=1, max_length=200, description="Item ids in the basket.")
    n: int = Field(default=10, ge=1, le=100)
    model: str | None = Field(default=None, max_length=50)
    explain: bool = False


class HistoryIn(FilterFields):
    history: list[ItemId] = Field(max_length=1000, description="Item ids the shopper viewed or bought, any order.")
    n: int = Field(default=10, ge=1, le=100)
    model: str | None = Field(default=None, max_length=50)
    explain: bool = False


# -- rules, segments, evaluation, quality ---------------------------------------------------------
class RuleOut(_Response):
    antecedent: list[ItemSummary]
    consequent: list[ItemSummary]
    support: float
    confidence: float
    lift: float
    leverage: float
    conviction: float
    reason: str


class RulesOut(_Response):
    total: int
    limit: int
    offset: int
    sort: str
    items: list[RuleOut]


class SegmentsOut(_Response):
    summary: list[dict[str, Any]]
    segment: str | None
    total: int
    limit: int
    offset: int
    users: list[dict[str, Any]]


class EvaluationOut(_Response):
    default_model: str | None
    loaded_models: list[str]
    rows: list[dict[str, Any]]


class QualityOut(_Response):
    total_rejected: int
    events_in_snapshot: int
    by_reason: list[dict[str, Any]]
    by_source: list[dict[str, Any]]


class RejectsOut(_Response):
    reason: str
    description: str
    rows: int
    examples: list[dict[str, Any]]


# -- writes -------------------------------------------------------------------------------------
class EventIn(_Request):
    """One event in the canonical columns. Values are checked like file rows: a bad value rejects
    the row with a reason rather than the whole request."""

    item_id: Scalar = None
    user_id: Scalar = None
    basket_id: Scalar = None
    event: Scalar = Field(default=None, description="view, click, fav, cart, purchase (default), return, rating.")
    ts: Scalar = Field(default=None, description="ISO 8601 time (UTC offsets honoured) or epoch seconds; "
                                                 "default: the time the server receives it.")
    quantity: Scalar = None
    value: Scalar = None


class EventsIn(_Request):
    events: list[EventIn] = Field(min_length=1, max_length=10_000)


class ProductIn(_Request):
    """One product in the catalog's columns. Given values replace the stored ones; missing ones keep them."""

    item_id: Scalar = None
    title: Scalar = None
    description: Scalar = None
    category: Scalar = Field(default=None, description="A path such as \"Home > Kitchen > Mugs\" or one name.")
    brand: Scalar = None
    price: Scalar = None


class CatalogIn(_Request):
    products: list[ProductIn] = Field(min_length=1, max_length=10_000)


class RowReject(_Response):
    row: int = Field(description="1-based position of the event in the posted list.")
    reason: str


class EventsOut(_Response):
    run_id: int | None
    received: int
    accepted: int
    rejected: dict[str, int]
    rejects: list[RowReject]
    folded: int = Field(description="Accepted events that updated the in-memory statistics now.")
    pending_rebuild: int = Field(description="Accepted events for items the snapshot does not know yet.")


class CatalogOut(_Response):
    run_id: int
    received: int
    stored: int = Field(description="Products stored; the answers use their text and price after the next rebuild "
                                    "(POST /v1/admin/rebuild).")
    rejected: dict[str, int]
    rejects: list[RowReject]
    new_products: int = Field(description="Stored products the serving snapshot does not know yet.")


class RebuildIn(_Request):
    models: list[Annotated[str, Field(max_length=50)]] | None = Field(
        default=None, max_length=20, description="Models to refit (default: the loaded ones).")
    cluster: bool = Field(default=True, description="Recompute product groups and customer segments.")
    relearn: bool = Field(default=False, description=(
        "Learn the hybrid's rankers again (every component refitted on each validation fold: minutes). By default "
        "a loaded hybrid keeps its rankers and refits its components on the current events (seconds); rankers a "
        "month old cost 0.2 % of NDCG@10, 75 days 1.7 % (benchmarks/bench_refresh.py). Likewise content-finetuned is "
        "fine-tuned again only with relearn; by default the encoder it saved encodes the current catalog."))


class JobOut(_Response):
    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: float
    steps: list[dict[str, Any]]
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    result: dict[str, Any] | None


class HealthOut(_Response):
    status: str
    snapshot_version: int
    snapshot_built_at: str
    items: int
    users: int
    baskets: int = Field(description="Transactions every co-count is out of: purchase baskets, or customers in a "
                                     "store without orders (unit). Every answer's basket counts are of this unit.")
    unit: str = Field(description="basket, or customer in a store without orders (reviews, ratings, views), where "
                                  "what goes together is what the same customer bought.")
    models: list[str]
    default_model: str | None
    added_since_snapshot: bool = Field(default=False, description="Posted to the catalog after the live snapshot: "
                                       "no statistics yet, similar items from its text until the next rebuild.")
    writable: bool
    semantic: str
    precomputed: bool = Field(description="Plain similar/bought-together answers of every item are cached.")
    events_since_snapshot: int
    rankers_learnt_until: dict[str, str | None] = Field(default_factory=dict, description=(
        "For each loaded hybrid, when the events its rankers were learnt from end (None: unknown, an artifact "
        "from before this was recorded). A rebuild refreshes the rest but keeps the rankers: relearn them when "
        "this grows old (a month: 0.2 % of NDCG@10, 75 days: 1.7 %, benchmarks/bench_refresh.py)."))


class GroupsOut(_Response):
    groups: list[dict[str, Any]]
    categories: list[dict[str, Any]]
