"""Canonical columns and event types (DESIGN §2)."""

from __future__ import annotations

EVENT_ROLES = ("user_id", "item_id", "event", "ts", "basket_id", "quantity", "value")
CATALOG_ROLES = ("title", "description", "category", "brand", "price")
ALL_ROLES = EVENT_ROLES + CATALOG_ROLES + ("order",)
"""`order` is an optional sort key (e.g. a position in a sequence) used when there is no timestamp."""

EVENT_TYPES = ("view", "click", "fav", "cart", "purchase", "return", "rating")

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0, "click": 1.0, "fav": 2.0, "cart": 3.0, "purchase": 4.0, "rating": 1.0,
}
"""SAR's original weights; returns cancel one purchase each instead of having a weight."""

EVENT_SYNONYMS: dict[str, str] = {
    # Taobao's user-behaviour logs write pv / buy / cart / fav; Google Analytics 4 view_item / add_to_cart /
    # add_to_wishlist / select_item / purchase / refund; Chinese shop exports their Chinese names.
    "view": "view", "pageview": "view", "page_view": "view", "detail": "view", "pv": "view", "view_item": "view",
    "product_view": "view", "浏览": "view",
    "click": "click", "select_item": "click", "点击": "click",
    "fav": "fav", "favorite": "fav", "favourite": "fav", "like": "fav", "wishlist": "fav",
    "add_to_wishlist": "fav", "收藏": "fav",
    "cart": "cart", "addtocart": "cart", "add_to_cart": "cart", "basket": "cart", "加购": "cart",
    "加入购物车": "cart",
    "purchase": "purchase", "buy": "purchase", "order": "purchase", "transaction": "purchase",
    "sale": "purchase", "购买": "purchase", "下单": "purchase", "支付": "purchase",
    "return": "return", "refund": "return", "cancel": "return", "退货": "return", "退款": "return",
    "rating": "rating", "rate": "rating", "review": "rating", "评价": "rating", "评分": "rating",
}
"""Source event names (lower-cased) that map to a canonical event when a mapping gives none."""

BASKET_EVENTS = ("purchase",)
"""Events whose rows make up a basket (transaction) for co-occurrence mining."""
