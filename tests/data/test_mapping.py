"""Mappings: presets, TOML files, --col overrides, validation of roles, events and weights."""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest

from itemaffinity.data.interactions import InteractionData
from itemaffinity.data.mapping import PRESETS, load_map_file, resolve_mapping
from itemaffinity.data.schema import DEFAULT_EVENT_WEIGHTS
from itemaffinity.errors import InputError

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_resolves(name):
    m = resolve_mapping(preset=name)
    assert m.name == name
    assert "item_id" in m.columns
    assert {"basket_id", "user_id"} & set(m.columns)


def test_online_retail_preset_columns():
    m = resolve_mapping(preset="online-retail")
    assert m.columns == {"basket_id": "InvoiceNo", "item_id": "StockCode", "title": "Description",
                         "quantity": "Quantity", "ts": "InvoiceDate", "price": "UnitPrice",
                         "user_id": "CustomerID"}
    assert m.return_basket_prefix == "C"
    assert {"POST", "M", "D", "DOT", "BANK CHARGES", "AMAZONFEE"} <= set(m.non_product_codes)


def test_col_flags_override_the_preset_and_leave_the_rest():
    m = resolve_mapping(preset="online-retail", cols=["user_id=Country", " title = Desc "])
    assert m.columns["user_id"] == "Country"
    assert m.columns["title"] == "Desc"
    assert m.columns["item_id"] == "StockCode"
    # The preset itself is not modified by an override.
    assert PRESETS["online-retail"]["columns"]["user_id"] == "CustomerID"
    assert resolve_mapping(preset="online-retail").columns["user_id"] == "CustomerID"


def test_catalog_col_flags_extend_the_preset_catalog():
    m = resolve_mapping(preset="instacart", catalog_cols=["brand=product_name"])
    assert m.catalog.columns["brand"] == "product_name"
    assert m.catalog.columns["category"] == ["department", "aisle"]
    assert m.catalog.file == "products.parquet"


def test_options_fill_top_level_fields_and_none_is_ignored():
    m = resolve_mapping(cols=["item_id=sku", "basket_id=o"],
                        options={"delimiter": ";", "encoding": None, "sheet": "Orders", "timestamp_format": "%d/%m/%Y"})
    assert (m.delimiter, m.encoding, m.sheet, m.timestamp_format) == (";", None, "Orders", "%d/%m/%Y")


def test_toml_file_with_flag_override(tmp_path):
    f = tmp_path / "shop.toml"
    f.write_text('''
name = "my-shop"
default_event = "view"
half_life_days = 90
non_product_codes = ["POSTAGE"]
[columns]
basket_id = "order_no"
item_id = "sku"
user_id = "customer"
[event_values]
addtocart = "cart"
[event_weights]
cart = 2.5
[catalog]
file = "products.csv"
[catalog.columns]
item_id = "sku"
category = ["department", "aisle"]
''')
    m = resolve_mapping(map_file=f, cols=["user_id=client"])
    assert m.name == "my-shop" and m.default_event == "view" and m.half_life_days == 90
    assert m.columns == {"basket_id": "order_no", "item_id": "sku", "user_id": "client"}
    assert m.non_product_codes == ["POSTAGE"]
    assert m.event_values == {"addtocart": "cart"}
    # Only `cart` is given: the other events keep SAR's default weights.
    assert m.event_weights == {**DEFAULT_EVENT_WEIGHTS, "cart": 2.5}
    assert m.catalog.file == "products.csv" and m.catalog.columns["category"] == ["department", "aisle"]


def test_readme_toml_example_is_a_valid_mapping(tmp_path):
    block = re.search(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "README lost its TOML mapping example"
    f = tmp_path / "readme.toml"
    f.write_text(block.group(1))
    m = resolve_mapping(map_file=f)
    assert m.columns["item_id"] == "sku" and m.event_values == {"put in bag": "cart"}  # addtocart needs none
    assert m.catalog.columns["variant_of"] == "Handle" and m.catalog.header_row == 1


def test_mapping_is_frozen():
    m = resolve_mapping(preset="online-retail")
    with pytest.raises(pydantic.ValidationError):
        m.name = "other"


@pytest.mark.parametrize("kwargs, message", [
    ({"cols": ["colour=sku"]}, r"unknown role\(s\) \['colour'\]"),
    ({"catalog_cols": ["colour=sku"]}, r"unknown catalog role\(s\) \['colour'\]"),
    ({"cols": ["item_id"]}, "--col expects ROLE=COLUMN, got 'item_id'"),
    ({"cols": ["item_id="]}, "--col expects ROLE=COLUMN"),
    ({"cols": ["=sku"]}, "--col expects ROLE=COLUMN"),
    ({"preset": "nope"}, "unknown preset 'nope'; known presets: amazon-beauty, instacart, online-retail, sasrec-games"),
    ({"preset": "instacart", "map_file": "x.toml"}, "either --preset or --map"),
    ({"options": {"default_event": "teleport"}}, "default_event 'teleport' is not one of"),
])
def test_bad_mappings_raise_input_error(kwargs, message):
    with pytest.raises(InputError, match=message):
        resolve_mapping(**kwargs)


@pytest.mark.parametrize("body, message", [
    ('[columns]\nitem_id = "sku"\n[event_values]\nbuy = "steal"\n', "event_values map to unknown event"),
    ('[columns]\nitem_id = "sku"\n[event_weights]\nwish = 1.0\n', "event_weights for unknown event"),
    ('colour = "red"\n', "colour: Extra inputs are not permitted"),
    ('[columns]\nitem_id = 3\n', "columns.item_id: Input should be a valid string"),
    ('half_life_days = 0\n', "half_life_days: Input should be greater than 0"),
    ('[catalog]\nfile = "p.csv"\ntab = "x"\n', "catalog.tab: Extra inputs are not permitted"),
])
def test_bad_toml_content_raises_input_error_naming_the_file(tmp_path, body, message):
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(InputError, match=message) as info:
        resolve_mapping(map_file=f)
    assert str(f) in str(info.value)


def test_toml_syntax_error_and_missing_file(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[columns\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_map_file(f)
    with pytest.raises(InputError, match="mapping file not found"):
        load_map_file(tmp_path / "absent.toml")


def test_event_values_map_source_names_case_insensitively(write, ingest, query, tmp_path):
    f = tmp_path / "ev.toml"
    f.write_text('default_event = "view"\n[columns]\nuser_id = "who"\nitem_id = "what"\nevent = "did"\n'
                 '[event_values]\nPV = "view"\n"Put In Bag" = "cart"\nbought = "purchase"\n')
    path = write("ev.csv", "who,what,did\nu1,a,pv\nu1,b, Put in bag \nu1,c,BOUGHT\nu1,d,\n"
                           "u1,e,teleport\nu1,f,favourite\n")
    res = ingest(path, map_file=f)
    assert res.rejected == {"unknown_event": 1}
    assert query("SELECT item_id, event FROM events ORDER BY source_row") == [
        ("a", "view"), ("b", "cart"), ("c", "purchase"), ("d", "view"), ("f", "fav")]
    assert query("SELECT source_row, reason FROM rejects") == [(5, "unknown_event")]


def test_event_names_of_taobao_ga4_and_chinese_exports_need_no_mapping(write, ingest, query):
    """Taobao's user-behaviour log (pv, buy, cart, fav), Google Analytics 4 (view_item, add_to_wishlist) and a
    Chinese shop's export (浏览, 加入购物车, 购买, 退款) map to the canonical events without [event_values]."""
    names = ["pv", "buy", "cart", "fav", "view_item", "add_to_wishlist", "浏览", "加入购物车", "购买", "退款"]
    path = write("ev.csv", "user,item,behavior\n" + "".join(f"u1,i{k},{n}\n" for k, n in enumerate(names)))
    res = ingest(path, cols=["user_id=user", "item_id=item", "event=behavior"])
    assert res.accepted == len(names) and not res.rejected
    assert [e for (e,) in query("SELECT event FROM events ORDER BY source_row")] == [
        "view", "purchase", "cart", "fav", "view", "fav", "view", "cart", "purchase", "return"]


def test_event_weights_from_a_mapping_drive_user_weights(write, ingest, tmp_path):
    f = tmp_path / "w.toml"
    f.write_text('[columns]\nuser_id = "who"\nitem_id = "what"\nevent = "did"\n'
                 '[event_weights]\ncart = 2.5\nview = 0.5\n')
    m = resolve_mapping(map_file=f)
    assert m.event_weights == {**DEFAULT_EVENT_WEIGHTS, "cart": 2.5, "view": 0.5}
    ingest(write("w.csv", "who,what,did\nu1,a,cart\nu1,b,view\nu1,c,purchase\n"), map_file=f)
    data = InteractionData.from_store(tmp_path / "store.duckdb", event_weights=m.event_weights)
    u = data.users.index("u1")
    row = data.user_items[u].toarray().ravel()
    assert row[data.items.index("a")] == pytest.approx(2.5)
    assert row[data.items.index("b")] == pytest.approx(0.5)
    assert row[data.items.index("c")] == pytest.approx(4.0)
