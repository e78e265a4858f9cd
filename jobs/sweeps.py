"""The shape every sweep shares: claim a batch, apply it in one transaction, repeat."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from django.db import transaction

ProgressCallback = Callable[[int], None]
# A shard's slice of a table: primary keys in [start, end), end None for "and above".
PkRange = tuple[int, int | None]


def within(queryset, pk_range: PkRange | None):
    if pk_range is None:
        return queryset
    start, end = pk_range
    queryset = queryset.filter(pk__gte=start)
    return queryset if end is None else queryset.filter(pk__lt=end)


def sweep_in_batches(
    *,
    apply_batch: Callable[[], Counter | None],
    on_progress: ProgressCallback | None = None,
    progress_key: str,
) -> Counter:
    """Run `apply_batch` in its own transaction until it finds nothing left to claim."""
    totals: Counter = Counter()
    while True:
        with transaction.atomic():
            batch = apply_batch()
        if not batch:
            return totals
        totals.update(batch)
        totals["batches"] += 1
        if on_progress:
            on_progress(totals[progress_key])
