"""The HTML report: one self-contained file (plots inlined as PNG) that every step adds to.

A report is a list of sections; each part of the pipeline contributes its own section
(`dataset_sections` here; mining and evaluation add theirs), so the report grows with the
pipeline without one module knowing all of it.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from itemaffinity.data.interactions import InteractionData  # noqa: E402
from itemaffinity.mining.transactions import transaction_counts, transaction_unit  # noqa: E402
from itemaffinity.text.encoders import CJK  # noqa: E402

log = logging.getLogger(__name__)

_TEMPLATE = jinja2.Environment(
    loader=jinja2.PackageLoader("itemaffinity", "templates"), autoescape=jinja2.select_autoescape(["html"])
)


@dataclass
class Section:
    title: str
    html: str
    anchor: str = ""


@dataclass
class Report:
    """An HTML report under construction."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, title: str, body_html: str) -> None:
        anchor = "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")
        self.sections.append(Section(title, body_html, anchor))

    def write(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "index.html"
        text = _TEMPLATE.get_template("report.html").render(report=self)
        path.write_text(text, encoding="utf-8")
        return path


def figure_html(fig: plt.Figure, alt: str) -> str:
    """A matplotlib figure as an inline <img> (the report stays one file)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table_html(header: list[str], rows: list[list[object]], numeric: set[int] | None = None) -> str:
    """A plain HTML table; columns in `numeric` are right-aligned and thousands-separated."""
    numeric = numeric or set()

    def cell(i: int, v: object) -> str:
        if i in numeric and isinstance(v, (int, np.integer)):
            return f'<td class="num">{int(v):,}</td>'
        if i in numeric and isinstance(v, (float, np.floating)):
            text = f"{float(v):,.4g}" if np.isfinite(v) else "—" if np.isnan(v) else "∞" if v > 0 else "−∞"
            return f'<td class="num">{text}</td>'
        return f"<td>{html.escape('' if v is None else str(v))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


TITLE_CHARS = 90
"""A title's length in the report's tables: marketplace titles run to hundreds of characters (Amazon's)."""


def short_title(text: str | None) -> str | None:
    """`text` cut to TITLE_CHARS at a word, with an ellipsis."""
    if text is None or len(text) <= TITLE_CHARS:
        return text
    return text[:TITLE_CHARS].rsplit(" ", 1)[0].rstrip(" ,;-–") + "…"


def dataset_sections(report: Report, con: duckdb.DuckDBPyConnection, data: InteractionData) -> None:
    """Dataset summary, rejects by reason, basket sizes, item popularity and activity over time."""
    from itemaffinity.store.duckdb_store import store_summary

    s = store_summary(con)
    sizes = np.diff(data.basket_items.indptr)
    summary = [
        ["events accepted", s["events"]], ["rows rejected", sum(s["rejects"].values())],
        ["distinct items (with events)", s["items"]], ["catalog items", s["catalog_items"]],
        ["users", s["users"]], ["purchase baskets", data.n_baskets],
        ["mean basket size (distinct items)", float(sizes.mean()) if len(sizes) else 0.0],
        *([["first event", s["time_range"][0]], ["last event", s["time_range"][1]]] if s["time_range"][0] else
          [["event times", "none: the file order is the time order"]]),
    ]
    by_type = table_html(["event", "rows"], [[k, v] for k, v in s["events_by_type"].items()], {1})
    runs = con.execute("""SELECT run_id, kind, source, rows_read, accepted, catalog_rows, finished_at FROM runs
                          ORDER BY run_id""").fetchall()
    report.add("Dataset", table_html(["measure", "value"], summary, {1})
               + "<h3>Events by type</h3>" + by_type
               + "<h3>Ingest runs</h3><p>ingest: a file of events (and its catalog); catalog: a catalog alone; api: "
                 "events posted to the service.</p>"
               + table_html(["run", "kind", "source", "rows read", "accepted", "catalog rows", "finished"],
                            [list(r) for r in runs], {3, 4, 5}))
    rej = con.execute("""SELECT reason, CASE WHEN detail LIKE 'catalog%' THEN 'catalog' ELSE 'events' END AS of,
                                count(*) AS n, any_value(raw) FROM rejects GROUP BY ALL ORDER BY n DESC""").fetchall()
    events_read = con.execute("SELECT coalesce(sum(rows_read), 0) FROM runs").fetchone()[0] or 1
    report.add("Data quality: rejected rows",
               "<p>Every row read is either accepted or kept in the <code>rejects</code> table with its reason. "
               "The share is of the event rows read; a catalog's rejected rows are counted apart.</p>"
               + (table_html(["reason", "rows of", "rows", "share of event rows read", "example"],
                             [[r, of, n, f"{n / events_read:.2%}" if of == "events" else "—", (ex or "")[:160]]
                              for r, of, n, ex in rej], {2}) if rej else "<p>No row was rejected.</p>"))

    figs = []
    if len(sizes):
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.hist(np.clip(sizes, 1, 100), bins=50, color="#3b6ea5")
        ax.set_xlabel("distinct items per basket (clipped at 100)")
        ax.set_ylabel("baskets")
        ax.set_title("Basket sizes")
        figs.append(figure_html(fig, "basket size histogram"))
    counts, unit = transaction_counts(data), transaction_unit(data)
    pop = np.sort(counts)[::-1]
    pop = pop[pop > 0]
    if len(pop):
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.loglog(np.arange(1, len(pop) + 1), pop, color="#a53b3b")
        ax.set_xlabel("item rank")
        ax.set_ylabel("baskets containing the item" if unit == "basket" else "customers who bought the item")
        ax.set_title("Item popularity (long tail)")
        figs.append(figure_html(fig, "item popularity"))
    monthly = con.execute("""SELECT date_trunc('month', ts) AS m, count(*) FROM events WHERE ts IS NOT NULL
                             GROUP BY 1 ORDER BY 1""").fetchall()
    if monthly:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.bar([m.strftime("%Y-%m") for m, _ in monthly], [n for _, n in monthly], color="#3ba57a")
        ax.tick_params(axis="x", rotation=70, labelsize=7)
        ax.set_ylabel("events")
        ax.set_title("Events per month")
        figs.append(figure_html(fig, "events per month"))
    top = np.argsort(-counts, kind="stable")[:15]
    top_rows = [[data.items.id(i), short_title(data.titles[i]), int(data.item_baskets[i]), int(data.item_users[i])]
                for i in top]
    report.add("Activity", '<div class="figs">' + "".join(figs) + "</div><h3>Most frequently bought items</h3>"
               + table_html(["item_id", "title", "baskets", "users"], top_rows, {2, 3}))


def vs_best_text(row: dict) -> str:
    """"ratio (low–high)": a leaderboard row's NDCG@10 over the leader's and its interval (`compare_to_best`)."""
    if row.get("NDCG@10_vs_best") is None:
        return ""
    return f"{row['NDCG@10_vs_best']:.3f} ({row['NDCG@10_vs_best_low']:.3f}–{row['NDCG@10_vs_best_high']:.3f})"


def by_popularity_text(row: dict) -> str:
    """"rare · middle · best sellers": a leaderboard row's NDCG@10 in the thirds of the queries by the held-out
    item's popularity (`metrics.popularity_thirds`)."""
    thirds = row.get("popularity_thirds")
    return " · ".join(f"{v:.4f}" for v in thirds["NDCG@10"]) if thirds else "—"


def leaderboard_section(report: Report, rows: list[dict]) -> None:
    """Leaderboard table and bar charts of the ranking metrics, one block per task."""
    if not rows:
        return
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r)
    for task, trs in by_task.items():
        trs = sorted(trs, key=lambda r: -r["NDCG@10"])
        thirds = next((r["popularity_thirds"] for r in trs if r.get("popularity_thirds")), None)  # none: new products
        # (heading, the row's value); a function gives a text column, a key a numeric one
        columns = [("HR@10", "HR@10"), ("NDCG@10", "NDCG@10"), ("× best (95 % interval)", vs_best_text),
                   *[("NDCG@10: rare · middle · best sellers", by_popularity_text)] * bool(thirds),
                   ("MRR@10", "MRR@10"), ("Recall@20", "Recall@20"), ("MAP@10", "MAP@10"),
                   ("coverage@10", "coverage@10"), ("popularity bias", "popularity_bias@10"),
                   ("diversity", "diversity@10"), ("fit s", "fit_s"), ("eval s", "eval_s")]
        table = table_html(["model"] + [head for head, _ in columns],
                           [[r.get("label", r["model"])] + [v(r) if callable(v) else r.get(v) for _, v in columns]
                            for r in trs],
                           {1 + i for i, (_, v) in enumerate(columns) if not callable(v)})
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(trs) + 1.2))
        labels = [r.get("label", r["model"]) for r in trs][::-1]
        ax.barh(labels, [r["NDCG@10"] for r in trs][::-1], color="#3b6ea5", label="NDCG@10")
        ax.barh(labels, [r["HR@10"] for r in trs][::-1], color="#9cc3e6", alpha=0.5, label="HR@10")
        ax.set_xlabel("score")
        ax.legend(loc="lower right")
        first = trs[0]
        ranking = (f"ranked over the {first['cold_items']:,} cold items" if first.get("cold_items")
                   else "full ranking over all items")
        ax.set_title(f"{task}: {ranking}")
        sampled = [k for k in first if k.startswith("sampled")]
        extra = ""
        if sampled:
            extra = ("<h3>Sampled-negatives protocol (for comparison with papers only)</h3>"
                     + table_html(["model"] + sampled, [[r.get("label", r["model"])] + [r.get(k) for k in sampled]
                                                        for r in trs], set(range(1, len(sampled) + 1))))
        from itemaffinity.evaluation.protocols import PUBLISHED

        published = PUBLISHED.get((str(first.get("dataset_name")), task.removesuffix("-validation")))
        if published:
            extra += f"<p><strong>Reference:</strong> {html.escape(published)}</p>"
        note = (f"<p>{html.escape(str(first.get('split', '')))} · {first['queries']:,} queries · seed "
                f"{first.get('seed')} · dataset {html.escape(str(first.get('dataset')))} · {ranking}; "
                f"query items excluded. × best: NDCG@10 over the leader's, with a 95 % paired bootstrap interval over "
                f"the test's customers (its queries when it names none); an interval that holds 1 means this test "
                f"cannot tell the model from the leader.</p>")
        if thirds:
            lo, hi = thirds["cuts"]
            note += (f"<p>Rare · middle · best sellers: NDCG@10 in three groups of the queries, as equal as ties "
                     f"allow, by how often the held-out item was bought in the training data (≤ {lo:,.0f}, "
                     f"{lo:,.0f}–{hi:,.0f}, more than {hi:,.0f} {thirds['of']}): does a model find what sells "
                     f"rarely, or only the best sellers?</p>")
        report.add(f"Leaderboard: {task}", note + figure_html(fig, f"{task} leaderboard") + table + extra)


def clusters_section(report: Report, data: InteractionData, groups, segments: dict) -> None:
    """Product groups with example titles, and customer segments with their RFM profile."""
    rows = []
    pop = transaction_counts(data)
    for c, label in enumerate(groups.labels):
        members = np.flatnonzero(groups.item_cluster == c)
        top = members[np.argsort(-pop[members])][:4]
        rows.append([c, label, int(groups.sizes[c]), "; ".join(str(short_title(data.titles[i]) or data.items.id(i)) for i in top)])
    seg_names = [s for s in dict.fromkeys(segments["segment"].tolist()) if s]
    seg_rows = []
    for name in seg_names:
        mask = segments["segment"] == name
        recency = float(np.median(segments["recency_days"][mask]))  # no purchase dates: none to count from
        seg_rows.append([name, int(mask.sum()), recency if np.isfinite(recency) else "—",
                         float(np.median(segments["frequency"][mask])), float(np.median(segments["monetary"][mask]))])
    seg_rows.sort(key=lambda r: -r[1])
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh([r[0] for r in seg_rows][::-1], [r[1] for r in seg_rows][::-1], color="#6a4c93")
    ax.set_xlabel("customers")
    ax.set_title("RFM segments")
    report.add("Product groups and customer segments",
               "<p>Product groups: K-Means on co-purchase embeddings (SVD of PPMI co-occurrence), named by "
               "their most distinctive title words. Segments: RFM quintile scores; behaviour clusters from each "
               "customer's spend share per product group are stored in the <code>segments</code> table.</p>"
               + table_html(["group", "label", "items", "best sellers"], rows, {0, 2})
               + figure_html(fig, "segments")
               + table_html(["segment", "customers", "median recency (days)", "median baskets", "median spend"],
                            seg_rows, {1, 2, 3, 4}))


MAX_RULES_PER_ITEM = 2
"""How many of the report's top rules one product may appear in."""


def diverse_rules(ranked: Iterable[dict], n: int) -> list[dict]:
    """The first n of `ranked` rules that add something: one rule per set of products (A → B + C and B + C → A are
    one set), and each product in at most MAX_RULES_PER_ITEM of them (five herb markers make 25 top rules by lift
    of one family)."""
    seen_sets: set[frozenset] = set()
    uses: dict[str, int] = {}
    kept = []
    for rule in ranked:
        products = frozenset(rule["antecedent"]) | frozenset(rule["consequent"])
        if products in seen_sets or any(uses.get(i, 0) >= MAX_RULES_PER_ITEM for i in products):
            continue
        seen_sets.add(products)
        for i in products:
            uses[i] = uses.get(i, 0) + 1
        kept.append(rule)
        if len(kept) == n:
            break
    return kept


def mining_section(report: Report, data: InteractionData, rules_table, pairs_table, n: int = 25) -> None:
    """Top rules by lift (with support), top pairs, and a small network picture of the strongest pairs."""
    title = lambda item_id: short_title(data.titles[data.items.index(item_id)]) or item_id  # noqa: E731
    ranked = rules_table.sort_by([("lift", "descending"), ("confidence", "descending")])
    # read a thousand rules at a time, and only until n are kept, not every rule as a dict
    rules = diverse_rules((r for batch in ranked.to_batches(1000) for r in batch.to_pylist()), n)
    rule_rows = [[" + ".join(title(i) for i in r["antecedent"]), " + ".join(title(i) for i in r["consequent"]),
                  r["support"], r["confidence"], r["lift"], r["leverage"], r["conviction"]] for r in rules]
    unit = transaction_unit(data)
    unordered = pairs_table.filter(pc.less(pairs_table["item_a"], pairs_table["item_b"]))
    # bought together at least once: the table also holds text neighbours never bought together
    top_pairs = unordered.filter(pc.greater(unordered["n_ab"], 0)).sort_by([("n_ab", "descending")]) \
        .slice(0, n).to_pylist()
    pair_rows = [[title(p["item_a"]), title(p["item_b"]), p["n_ab"], p["support"], p["confidence"], p["lift"],
                  p["significance"]] for p in top_pairs]
    strong = unordered.filter(pc.greater_equal(unordered["n_ab"], 30)).sort_by([("shrunk_lift", "descending")]) \
        .slice(0, 40).to_pylist()
    report.add("Associations: rules and pairs",
               f"<p>{rules_table.num_rows:,} rules; pairs ranked by co-purchase count. Significance is −log10 of "
               "the one-sided Fisher exact p-value (rare coincidences score low).</p>"
               + _network_figure(strong, title, unit)
               + "<h3>Top rules by lift</h3><p>The best rule of each set of products, each product in at most "
                 f"{MAX_RULES_PER_ITEM} of them, so that one family of look-alikes does not fill the table; "
                 "every rule is in the store's <code>rules</code> table and the rules explorer.</p>"
               + table_html(["if a basket has" if unit == "basket" else "if a customer bought",
                             "it also has" if unit == "basket" else "they also bought", "support", "confidence",
                             "lift", "leverage", "conviction"], rule_rows, {2, 3, 4, 5, 6})
               + "<h3>Most frequent pairs</h3>"
               + ("" if unit == "basket" else "<p>The log has no orders: a pair is bought by the same customer, "
                  "and support is a share of the customers.</p>")
               + table_html(["item", "bought with", f"{unit}s", "support", "confidence", "lift", "significance"],
                            pair_rows, {2, 3, 4, 5, 6}))


CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK KR", "Source Han Sans SC", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "Droid Sans Fallback", "SimHei", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB")
"""Fonts with Chinese (and mostly Japanese and Korean) glyphs, the first installed one draws such titles."""


@functools.cache
def cjk_font() -> str | None:
    """An installed font that draws Chinese, Japanese and Korean characters, or None."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def _chart_label(text: str, item_id: str) -> tuple[str, list[str] | None]:
    """A product's label on a chart and the fonts to draw it with: a Chinese, Japanese or Korean title with an
    installed CJK font beside the default, else the item id (DejaVu Sans has no CJK glyphs: boxes)."""
    if not CJK.search(text):
        return text, None
    font = cjk_font()
    return (text, ["DejaVu Sans", font]) if font else (item_id, None)


def _network_figure(pairs: list[dict], title, unit: str = "basket") -> str:
    """A circle layout of the strongest pairs: nodes are products, edge width is the lift."""
    if not pairs:
        return ""
    nodes = list(dict.fromkeys([p["item_a"] for p in pairs] + [p["item_b"] for p in pairs]))
    angle = np.linspace(0, 2 * np.pi, len(nodes), endpoint=False)
    pos = {n: (np.cos(a), np.sin(a)) for n, a in zip(nodes, angle)}
    fig, ax = plt.subplots(figsize=(9, 9))
    top_lift = max(p["shrunk_lift"] for p in pairs)
    for p in pairs:
        (x1, y1), (x2, y2) = pos[p["item_a"]], pos[p["item_b"]]
        ax.plot([x1, x2], [y1, y2], color="#3b6ea5", alpha=0.6, linewidth=0.5 + 4 * p["shrunk_lift"] / top_lift)
    by_id = 0
    for n, (x, y) in pos.items():
        ax.scatter([x], [y], s=30, color="#a53b3b", zorder=3)
        text = str(title(n))[:28]
        label, fonts = _chart_label(text, str(n))
        by_id += label != text
        ax.text(x * 1.05, y * 1.05, label, fontsize=6.5, ha="left" if x >= 0 else "right", va="center",
                rotation=np.degrees(np.arctan2(y, x)) if x >= 0 else np.degrees(np.arctan2(y, x)) + 180,
                rotation_mode="anchor", **({"fontfamily": fonts} if fonts else {}))
    if by_id:
        log.warning("association network: %d products with Chinese, Japanese or Korean titles are labelled by "
                    "item id, as no font with those characters is installed (e.g. Debian's fonts-noto-cjk)", by_id)
    ax.set_xlim(-1.9, 1.9)
    ax.set_ylim(-1.9, 1.9)
    ax.axis("off")
    ax.set_title(f"Strongest associations (≥ 30 shared {unit}s; edge width = shrunk lift)")
    return figure_html(fig, "association network")
