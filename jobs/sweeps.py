"""The shape every sweep shares: claim a batch, apply it in one transaction, repeat; and the
primary-key ranges that split a sweep's rows between shard runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from django.db import transaction
from django.db.models import F, Window
from django.db.models.functions import Mod, RowNumber

ProgressCallback = Callable[[int], None]
# A shard's slice of a table: primary keys in [start, end), end None for "and above".
PkRange = tuple[int, int | None]


def within(queryset, pk_range: PkRange | None):
    if pk_range is None:
        return queryset
    start, end = pk_range
    queryset = queryset.filter(pk__gte=start)
    return queryset if end is None else queryset.filter(pk__lt=end)


def pk_ranges(queryset, *, size: int) -> list[PkRange]:
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


def claim_batch(queryset, batch_size: int, *fields: str) -> list:
    """Lock and return up to `batch_size` rows of `queryset` that no other worker holds, in
    primary-key order: their primary keys, or the tuples of `fields`."""
    claimed = queryset.select_for_update(skip_locked=True).order_by("pk")
    if fields:
        return list(claimed.values_list(*fields)[:batch_size])
    return list(claimed.values_list("pk", flat=True)[:batch_size])


def delete_in_batches(
    queryset_of: Callable[[], object],
    *,
    key: str,
    batch_size: int,
    on_progress: ProgressCallback | None = None,
) -> int:
    """Delete the rows of `queryset_of()` in claimed batches, one transaction each; how many
    rows of its model went (cascades to the same model included)."""

    def apply_batch() -> Counter | None:
        queryset = queryset_of()
        ids = claim_batch(queryset, batch_size)
        if not ids:
            return None
        _total, per_model = queryset_of().filter(pk__in=ids).delete()
        return Counter({key: per_model.get(queryset.model._meta.label, 0)})

    return sweep_in_batches(apply_batch=apply_batch, on_progress=on_progress, progress_key=key)[key]
