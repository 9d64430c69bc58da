"""Dataset mappings: how a source file's columns become the canonical columns.

A mapping comes from a preset (the shared datasets), a TOML file (`--map`) or per-column flags
(`--col role=column`); flags override the file or preset they are given with.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from itemaffinity.data.schema import (ALL_ROLES, CATALOG_ROLES, DEFAULT_EVENT_WEIGHTS,
                                      EVENT_TYPES)
from itemaffinity.errors import InputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Join(_Strict):
    """A sibling file joined on a key to bring in more columns (e.g. Instacart's user_id)."""

    file: str
    on: str
    columns: list[str] | None = None


class CatalogSpec(_Strict):
    """Where the catalog comes from when it is a file of its own.

    `columns` maps a role to a column, or to a list of columns joined with " > " (a category path). `variant_of`
    names the column a product's variants share (Shopify's Handle): a variant's empty text is its product's.
    A relative `file` is resolved against the events file's folder for presets and against the
    working directory for user mappings.
    """

    file: str | None = None
    sheet: str | None = None
    """The Excel sheet of the catalog (first sheet when omitted): products beside the orders in one workbook."""
    header_row: int = Field(default=1, ge=0, description=(
        "The catalog's CSV/Excel row holding the column names, when a title comes first (a report export); 0: none, "
        "its columns are column1, column2, …"))
    columns: dict[str, str | list[str]] = Field(default_factory=dict)
    joins: list[Join] = Field(default_factory=list)

    @field_validator("columns")
    @classmethod
    def _known_roles(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = set(v) - set(("item_id", *CATALOG_ROLES, "variant_of"))
        if unknown:
            raise ValueError(f"unknown catalog role(s) {sorted(unknown)}; "
                             f"known: item_id, {', '.join(CATALOG_ROLES)}, variant_of")
        return v


class Mapping(_Strict):
    """Source columns → canonical columns, event names, weights and cleaning rules."""

    name: str = "custom"
    columns: dict[str, str] = Field(default_factory=dict)
    joins: list[Join] = Field(default_factory=list)
    event_values: dict[str, str] = Field(default_factory=dict)
    default_event: str = "purchase"
    event_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    half_life_days: float | None = Field(default=None, gt=0)
    return_basket_prefix: str | None = None
    non_product_codes: list[str] = Field(default_factory=list)
    non_product_pattern: str | None = None
    item_id_case: Literal["keep", "upper", "lower"] = Field(default="keep", description=(
        "keep: item ids as given; upper / lower: ids that differ only in letter case (Online Retail's 85123A and "
        "85123a, one product) become one item. Ingest counts such ids when they are kept apart."))
    timestamp_format: str | None = None
    explode: str | None = Field(default=None, description=(
        "A column holding a list (an order's line items in one JSON field): one row per element, an element's "
        "fields as columns `<explode>.<field>` beside the row's own, e.g. item_id = \"line_items.sku\"."))
    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    header_row: int = Field(default=1, ge=0, description=(
        "The events file's CSV or Excel row that holds the column names, when a title or notes come first; rows "
        "above it are not data. 0: the file has no header row (Taobao's UserBehavior.csv); its columns are named "
        "column1, column2, …"))
    strict_catalog: bool = False
    catalog: CatalogSpec | None = None

    @field_validator("columns")
    @classmethod
    def _known_roles(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = set(v) - set(ALL_ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; known: {', '.join(ALL_ROLES)}")
        return v

    @field_validator("event_values")
    @classmethod
    def _known_events(cls, v: dict[str, str]) -> dict[str, str]:
        bad = {k: e for k, e in v.items() if e not in EVENT_TYPES}
        if bad:
            raise ValueError(f"event_values map to unknown event(s) {bad}; known: {', '.join(EVENT_TYPES)}")
        return v

    @field_validator("event_weights")
    @classmethod
    def _known_weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = set(v) - set(EVENT_TYPES)
        if bad:
            raise ValueError(f"event_weights for unknown event(s) {sorted(bad)}")
        # Given weights override the defaults one by one; events not named keep theirs.
        return {**DEFAULT_EVENT_WEIGHTS, **v}

    @model_validator(mode="after")
    def _default_event_known(self) -> "Mapping":
        if self.default_event not in EVENT_TYPES:
            raise ValueError(f"default_event {self.default_event!r} is not one of {', '.join(EVENT_TYPES)}")
        return self

    def source_column(self, role: str) -> str | None:
        return self.columns.get(role)

    def fold_item_id(self, item_id: str) -> str:
        """An id as the store holds it under `item_id_case` (a request's, a rule's code)."""
        return item_id.upper() if self.item_id_case == "upper" else \
            item_id.lower() if self.item_id_case == "lower" else item_id


NON_PRODUCT_ONLINE_RETAIL = ["POST", "DOT", "M", "m", "C2", "D", "S", "B", "BANK CHARGES",
                             "AMAZONFEE", "CRUK", "PADS", "CRUK Commission"]

PRESETS: dict[str, dict[str, Any]] = {
    "online-retail": {
        "name": "online-retail",
        "columns": {"basket_id": "InvoiceNo", "item_id": "StockCode", "title": "Description",
                    "quantity": "Quantity", "ts": "InvoiceDate", "price": "UnitPrice",
                    "user_id": "CustomerID"},
        "return_basket_prefix": "C",
        "non_product_codes": NON_PRODUCT_ONLINE_RETAIL,
        "non_product_pattern": r"^gift_\d+_\d+$",
    },
    "amazon-beauty": {
        "name": "amazon-beauty",
        "columns": {"user_id": "user_id", "item_id": "item_id", "order": "position"},
        "catalog": {"file": "items.parquet", "columns": {"item_id": "item_id", "title": "title"}},
    },
    "sasrec-games": {
        "name": "sasrec-games",
        "columns": {"user_id": "user_id", "item_id": "item_id", "order": "position"},
    },
    "instacart": {
        "name": "instacart",
        "columns": {"basket_id": "order_id", "item_id": "product_id", "user_id": "user_id",
                    "order": "add_to_cart_order"},
        "joins": [{"file": "orders_sample.parquet", "on": "order_id", "columns": ["user_id"]}],
        "catalog": {
            "file": "products.parquet",
            "columns": {"item_id": "product_id", "title": "product_name",
                        "category": ["department", "aisle"]},
            "joins": [{"file": "aisles.parquet", "on": "aisle_id", "columns": ["aisle"]},
                      {"file": "departments.parquet", "on": "department_id", "columns": ["department"]}],
        },
    },
}


def _parse_pairs(pairs: list[str], flag: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        role, sep, column = pair.partition("=")
        if not sep or not role.strip() or not column.strip():
            raise InputError(f"{flag} expects ROLE=COLUMN, got {pair!r}")
        out[role.strip()] = column.strip()
    return out


def _validated(raw: dict[str, Any], origin: str) -> Mapping:
    try:
        return Mapping.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"invalid mapping in {origin}: {where}: {first['msg']}") from None


def load_map_file(path: str | Path) -> dict[str, Any]:
    """Read a user TOML mapping file into a plain dict (validated later, with flags applied)."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("mapping file not found", file=str(p)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"mapping file is not valid TOML: {exc}", file=str(p)) from None


def resolve_mapping(preset: str | None = None, map_file: str | Path | None = None,
                    cols: list[str] | None = None, catalog_cols: list[str] | None = None,
                    options: dict[str, Any] | None = None, catalog_options: dict[str, Any] | None = None
                    ) -> Mapping:
    """Build the mapping for one ingest from a preset or TOML file plus flags.

    Args:
        preset: a name in PRESETS.
        map_file: path of a TOML mapping file.
        cols: `ROLE=COLUMN` overrides for the events file.
        catalog_cols: `ROLE=COLUMN` overrides for the catalog file.
        catalog_options: further fields of the catalog (sheet, header_row), None where not given.
        options: further top-level fields (delimiter, encoding, sheet, timestamp_format …).
    """
    if preset and map_file:
        raise InputError("give either --preset or --map, not both")
    if preset:
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; known presets: {', '.join(sorted(PRESETS))}")
        raw, origin = {k: v for k, v in PRESETS[preset].items()}, f"preset {preset}"
    elif map_file:
        raw, origin = load_map_file(map_file), str(map_file)
    else:
        raw, origin = {}, "flags"
    raw["columns"] = {**raw.get("columns", {}), **_parse_pairs(cols or [], "--col")}
    given = {k: v for k, v in (catalog_options or {}).items() if v is not None}
    if catalog_cols or given:
        cat = dict(raw.get("catalog") or {})
        cat["columns"] = {**cat.get("columns", {}), **_parse_pairs(catalog_cols or [], "--catalog-col")}
        raw["catalog"] = {**cat, **given}
    raw.update({k: v for k, v in (options or {}).items() if v is not None})
    return _validated(raw, origin)
