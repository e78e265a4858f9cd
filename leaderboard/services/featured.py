"""The weekly featured users: 3 drawn from the leaderboard's top 10, reproducibly.

The draw needs no random generator: each candidate's ticket is
sha256("featured:<ISO week>:<user id>") in hex, and the lowest tickets win. The same week and
top 10 always give the same users, and an auditor can redo the draw from the run's summary
with any sha256 tool.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.db import transaction

from leaderboard.lock_objects import entries_table_lock
from leaderboard.models import LeaderboardEntry
from leaderboard.periods import iso_week_label

FEATURED_COUNT = 3
CANDIDATES = 10
DRAW_RULE = (
    f"the {FEATURED_COUNT} lowest sha256('featured:<week>:<user id>') among the top {CANDIDATES}"
)


def featured_ticket(*, week: str, user_id: int) -> str:
    return hashlib.sha256(f"featured:{week}:{user_id}".encode()).hexdigest()


def featured_draw(*, week: str, candidates: list[int], count: int = FEATURED_COUNT) -> list[int]:
    return sorted(candidates, key=lambda user_id: featured_ticket(week=week, user_id=user_id))[
        :count
    ]


def _plan(as_of: datetime) -> dict:
    week = iso_week_label(as_of)
    candidates = list(
        LeaderboardEntry.objects.order_by("rank").values_list("user_id", flat=True)[:CANDIDATES]
    )
    return {
        "week": week,
        "draw": DRAW_RULE,
        "candidates": candidates,
        "featured": featured_draw(week=week, candidates=candidates),
    }


def _to_clear(featured: list[int]):
    return LeaderboardEntry.objects.filter(featured=True).exclude(user_id__in=featured)


def _to_feature(featured: list[int], week: str):
    return LeaderboardEntry.objects.filter(user_id__in=featured).exclude(
        featured=True, featured_week=week
    )


def featured_rotate_preview(*, as_of: datetime) -> dict:
    plan = _plan(as_of)
    return {
        **plan,
        "featured_cleared": _to_clear(plan["featured"]).count(),
        "featured_set": _to_feature(plan["featured"], plan["week"]).count(),
    }


@transaction.atomic
def featured_rotate(*, as_of: datetime) -> dict:
    """Feature the week's draw from the current top 10 and clear everyone else's flag."""
    entries_table_lock()
    plan = _plan(as_of)
    cleared = _to_clear(plan["featured"]).update(featured=False, featured_week="")
    featured = _to_feature(plan["featured"], plan["week"]).update(
        featured=True, featured_week=plan["week"]
    )
    return {**plan, "featured_cleared": cleared, "featured_set": featured}
