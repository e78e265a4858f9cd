"""Locks of the leaderboard."""

from django.db import connection

from leaderboard.models import LeaderboardEntry, PrizePool


def entries_table_lock() -> None:
    """Serialise the writers of leaderboard entries for the rest of the transaction.

    The recompute updates every row in no particular order, and the featured rotation (due at
    the same minute on Mondays) updates a few: without one table lock they could deadlock.
    SHARE ROW EXCLUSIVE blocks other writers only; readers go on reading the old rows.
    """
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(LeaderboardEntry._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")


def pool_lock(pool_id: int) -> PrizePool:
    """The pool row, locked: entries and finalization of one pool take turns."""
    return PrizePool.objects.select_for_update().get(pk=pool_id)
