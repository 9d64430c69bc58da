"""Rules, customer segments, the evaluation leaderboard and data quality."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from itemaffinity.service import queries
from itemaffinity.service.deps import Current, Offset, json_response
from itemaffinity.service.problems import Problem
from itemaffinity.service.routes import problems
from itemaffinity.service.schemas import EvaluationOut, GroupsOut, QualityOut, RejectsOut, RulesOut, SegmentsOut

router = APIRouter(prefix="/v1", tags=["insights"])

Fraction = Annotated[float, Query(ge=0, le=1)]


@router.get("/rules", response_model=RulesOut, responses={**problems(422), 200: {
    "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}}}}, summary="Association rules")
async def rules(serving: Current,
                item: Annotated[str | None, Query(max_length=200, description="Rules that hold this item on either "
                                                  "side.")] = None,
                antecedent: Annotated[str | None, Query(max_length=200, description="Rules whose left side holds this item.")] = None,
                consequent: Annotated[str | None, Query(max_length=200, description="Rules whose right side holds this item.")] = None,
                category: Annotated[str | None, Query(max_length=200, description="Right side within this category "
                                                      "path or product group (prefix).")] = None,
                min_support: Fraction = 0.0, min_confidence: Fraction = 0.0,
                min_lift: Annotated[float | None, Query(ge=0)] = None,
                sort: Literal["lift", "confidence", "support", "leverage", "conviction"] = "lift",
                limit: Annotated[int, Query(ge=1, le=10_000)] = 50, offset: Offset = 0,
                format: Annotated[Literal["json", "csv"], Query(description="csv: a file to download.")] = "json",
                ) -> Response:
    """Rules A → C mined from frequent itemsets, with support, confidence, lift, leverage, conviction."""
    out = queries.list_rules(serving.snap, item=item, antecedent=antecedent, consequent=consequent, category=category,
                             min_support=min_support, min_confidence=min_confidence, min_lift=min_lift, sort=sort,
                             limit=limit, offset=offset)
    if format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["antecedent", "antecedent_titles", "consequent", "consequent_titles", "support", "confidence",
                    "lift", "leverage", "conviction"])
        for r in out["items"]:
            w.writerow([" + ".join(x["item_id"] for x in r["antecedent"]),
                        " + ".join(x["title"] or "" for x in r["antecedent"]),
                        " + ".join(x["item_id"] for x in r["consequent"]),
                        " + ".join(x["title"] or "" for x in r["consequent"]),
                        *(f"{r[k]:.6g}" for k in ("support", "confidence", "lift", "leverage", "conviction"))])
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="rules.csv"'})
    return json_response(out)


@router.get("/segments", response_model=SegmentsOut, responses=problems(422), summary="Customer segments")
async def segments(serving: Current,
                   segment: Annotated[str | None, Query(max_length=100, description="List this segment's customers.")] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 50, offset: Offset = 0) -> Response:
    """RFM segments (recency, frequency, monetary) with their sizes; customers of one segment by spend."""
    snap = serving.snap
    users = [r for r in snap.segments.values() if segment is None or r["segment"] == segment]
    users.sort(key=lambda r: (-(r["monetary"] or 0.0), r["user_id"]))
    return json_response({"summary": list(snap.segment_summary), "segment": segment, "total": len(users),
                          "limit": limit, "offset": offset, "users": users[offset:offset + limit]})


@router.get("/evaluation", response_model=EvaluationOut, responses=problems(), summary="Model leaderboard")
async def evaluation(serving: Current) -> Response:
    """The latest evaluation row per task and model (best first within a task)."""
    snap = serving.snap
    return json_response({"default_model": snap.default_model, "loaded_models": sorted(snap.models),
                          "rows": list(snap.evaluations)})


@router.get("/data-quality", response_model=QualityOut, responses=problems(), summary="Rejected rows by reason")
async def data_quality(serving: Current) -> Response:
    """Rows that ingest and the event API refused, counted by reason and by source."""
    return json_response(queries.data_quality(serving.snap, dict(serving.api_rejects)))


@router.get("/data-quality/{reason}", response_model=RejectsOut, responses=problems(404, 422),
            summary="Examples of one reject reason")
async def rejects(reason: Annotated[str, Path(max_length=50)], serving: Current) -> Response:
    """What a reason means, how many rows it hit, and example rows as they were read."""
    snap = serving.snap
    rows = sum(n for _, r, n in snap.rejects if r == reason) + serving.api_rejects.get(reason, 0)
    if not rows and reason not in queries.REJECT_REASONS:
        raise Problem(404, f"unknown reject reason {reason!r}")
    return json_response({"reason": reason, "description": queries.REJECT_REASONS.get(reason, reason),
                          "rows": rows, "examples": list(snap.reject_examples.get(reason, ()))})


@router.get("/groups", response_model=GroupsOut, responses=problems(), summary="Product groups and categories")
async def groups(serving: Current) -> Response:
    """Product groups (clusters of items bought together) and catalog categories, for filters."""
    snap = serving.snap
    sizes: dict[int, int] = {}
    for g in snap.group.tolist():
        if g >= 0:
            sizes[g] = sizes.get(g, 0) + 1
    labels = {int(g): lab for g, lab in zip(snap.group.tolist(), snap.group_label.tolist()) if g >= 0}
    cats: dict[str, int] = {}
    for c in snap.data.categories:
        if c:
            cats[c] = cats.get(c, 0) + 1
    return json_response({"groups": [{"id": g, "label": labels[g], "items": n} for g, n in sorted(sizes.items())],
                          "categories": [{"category": c, "items": n} for c, n in sorted(cats.items())]})
