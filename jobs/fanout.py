"""Fan-out: splitting a large backlog into shard runs that any worker can take."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from django.db.models import F, Window
from django.db.models.functions import Mod, RowNumber

SAMPLE_LIMIT = 10


@dataclasses.dataclass(frozen=True)
class FanOut:
    """What a job body returns to hand its work to shard runs instead of doing it."""

    shards: list[dict]
    summary: dict


def pk_ranges(queryset, *, size: int) -> list[tuple[int, int | None]]:
    """Split the rows of `queryset` into consecutive primary-key ranges of about `size` rows:
    [start, next start), the last one open-ended."""
    starts = list(
        queryset.annotate(row=Window(RowNumber(), order_by=F("pk").asc()))
        .annotate(offset=Mod(F("row") - 1, size))
        .filter(offset=0)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [
        (start, starts[index + 1] if index + 1 < len(starts) else None)
        for index, start in enumerate(starts)
    ]


def merge_summaries(summaries: Iterable[dict]) -> dict:
    """Add up the shards' summaries: numbers are summed, per-key counts merged, samples
    concatenated (capped); anything else is left out."""
    merged: dict = {}
    for summary in summaries:
        for key, value in summary.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                merged[key] = merged.get(key, 0) + value
            elif isinstance(value, list):
                merged[key] = (merged.get(key, []) + value)[:SAMPLE_LIMIT]
            elif isinstance(value, dict):
                counts = merged.setdefault(key, {})
                for name, count in value.items():
                    if isinstance(count, int | float) and not isinstance(count, bool):
                        counts[name] = counts.get(name, 0) + count
    return merged
