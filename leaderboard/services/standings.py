"""Boosts and the leaderboard recompute.

score = (100 × cycles completed + 10 × max(0, 30 − average completion days))
        × product of running multiplier boosts + sum of running point boosts

Every active account with a wallet is ranked. Cycles completed and completion days (from
obligation to fulfilment) come from the ledger's cycles fulfilled by `as_of`; the average is
rounded to 2 places before it enters the formula, so the stored entry explains its score. A
user without a fulfilled cycle has no average and gets no speed term (otherwise completing
nothing would earn the full 300). A boost runs from `starts_at` until just before
`expires_at`. The score is stored with 2 places (rounded half away from zero). Ranks are
1, 2, 3, … by score descending, ties broken by the lower user id.

The recompute is set-based SQL: the new standings are built in one statement into a
temporary table, then only the entries that differ are written. Python never holds the rows,
so a million users cost a few statements, not a million. PostgreSQL runs the tuned statements
below; SQLite, the default database of `make run`, runs `standings_sqlite`'s, which give the
same standings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from jobs.sweeps import ProgressCallback, sweep_in_batches
from leaderboard.lock_objects import entries_table_lock
from leaderboard.models import BOOST_TRANSITIONS, Boost, BoostKind, BoostStatus, LeaderboardEntry
from leaderboard.services import standings_sqlite
from ledger.models import DonationCycle, Wallet
from ledger.statuses import CycleStatus

TOP_SAMPLE = 10
NEW_SCORES = "leaderboard_new_scores"
BOOST_BATCH_SIZE = 10_000

# The new standings, each row classified against the current entry: `created`, `updated`,
# `removed` (an entry whose user is no longer active) or NULL (unchanged). The product of
# multipliers is exp(Σ ln) in double precision rounded to 8 places: exact for the 2-place
# multipliers a user holds at once. Rows are kept in the order of their entries on disk, by
# the entry's physical address: the update then walks the entries' pages once, in order,
# instead of in rank order, which at a million users (more entry pages than a small shared
# buffer pool holds) evicts and rewrites the same pages several times over.
_NEW_SCORES_SQL = """
CREATE TEMPORARY TABLE {new} AS
WITH cycle_stats AS (
    SELECT wallet_id,
           COUNT(*) AS completed,
           ROUND(AVG(EXTRACT(EPOCH FROM fulfilled_at - obligated_at)) / 86400, 2) AS avg_days
    FROM {cycle}
    WHERE status = %(fulfilled)s AND fulfilled_at <= %(as_of)s
    GROUP BY wallet_id
),
boost_stats AS (
    SELECT user_id,
           ROUND(EXP(SUM(LN(value::float8)) FILTER (WHERE kind = %(multiplier)s))::numeric, 8)
               AS multiplier,
           SUM(value) FILTER (WHERE kind = %(points)s) AS points
    FROM {boost}
    WHERE status = %(active)s AND starts_at <= %(as_of)s AND expires_at > %(as_of)s
    GROUP BY user_id
),
scored AS (
    SELECT wallet.user_id,
           COALESCE(cycle_stats.completed, 0) AS cycles_completed,
           cycle_stats.avg_days,
           ROUND(
               (100 * COALESCE(cycle_stats.completed, 0)
                + 10 * GREATEST(0, 30 - COALESCE(cycle_stats.avg_days, 30)))
               * COALESCE(boost_stats.multiplier, 1)
               + COALESCE(boost_stats.points, 0),
               2
           ) AS score
    FROM {wallet} AS wallet
    JOIN {user} AS account ON account.id = wallet.user_id AND account.is_active
    LEFT JOIN cycle_stats ON cycle_stats.wallet_id = wallet.id
    LEFT JOIN boost_stats ON boost_stats.user_id = wallet.user_id
),
ranked AS (
    SELECT user_id, cycles_completed, avg_days, score,
           ROW_NUMBER() OVER (ORDER BY score DESC, user_id) AS rank
    FROM scored
)
SELECT COALESCE(ranked.user_id, entry.user_id) AS user_id, entry.ctid AS entry_ctid,
       ranked.cycles_completed, ranked.avg_days, ranked.score, ranked.rank,
       CASE
           WHEN ranked.user_id IS NULL THEN 'removed'
           WHEN entry.user_id IS NULL THEN 'created'
           WHEN (entry.score, entry.rank, entry.cycles_completed, entry.average_completion_days)
                IS DISTINCT FROM
                (ranked.score, ranked.rank, ranked.cycles_completed, ranked.avg_days)
               THEN 'updated'
       END AS change
FROM ranked FULL JOIN {entry} AS entry ON entry.user_id = ranked.user_id
ORDER BY entry.ctid
"""

# Each entry is found by its physical address, which stays put while the recompute holds the
# table lock: the few removals and the many updates fetch their rows without a pass over the
# entries.
_REMOVE_SQL = """
DELETE FROM {entry} USING {new}
WHERE {new}.change = 'removed' AND {entry}.ctid = {new}.entry_ctid
"""

_UPDATE_SQL = """
UPDATE {entry}
SET score = {new}.score, rank = {new}.rank, cycles_completed = {new}.cycles_completed,
    average_completion_days = {new}.avg_days, updated_at = %(now)s
FROM {new}
WHERE {new}.change = 'updated' AND {entry}.ctid = {new}.entry_ctid
"""

_INSERT_SQL = """
INSERT INTO {entry} (user_id, score, rank, cycles_completed, average_completion_days,
                     featured, featured_week, updated_at)
SELECT user_id, score, rank, cycles_completed, avg_days, FALSE, '', %(now)s
FROM {new}
WHERE change = 'created'
"""

_COUNT_SQL = """
SELECT COUNT(*) FILTER (WHERE change IS DISTINCT FROM 'removed'),
       COUNT(*) FILTER (WHERE change = 'created'),
       COUNT(*) FILTER (WHERE change = 'updated'),
       COUNT(*) FILTER (WHERE change = 'removed')
FROM {new}
"""

_TOP_SQL = """
SELECT user_id FROM {new} WHERE rank <= %(top)s ORDER BY rank
"""


class _Dialect(NamedTuple):
    """The statements of the recompute that differ between the databases."""

    temp_schema: str
    remove: str
    update: str
    count: str


_POSTGRESQL = _Dialect(
    temp_schema="pg_temp", remove=_REMOVE_SQL, update=_UPDATE_SQL, count=_COUNT_SQL
)
_SQLITE = _Dialect(
    temp_schema="temp",
    remove=standings_sqlite.REMOVE_SQL,
    update=standings_sqlite.UPDATE_SQL,
    count=standings_sqlite.COUNT_SQL,
)


def _dialect() -> _Dialect:
    return _POSTGRESQL if connection.vendor == "postgresql" else _SQLITE


def _sql(template: str) -> str:
    quote = connection.ops.quote_name
    return template.format(
        new=NEW_SCORES,
        entry=quote(LeaderboardEntry._meta.db_table),
        cycle=quote(DonationCycle._meta.db_table),
        boost=quote(Boost._meta.db_table),
        wallet=quote(Wallet._meta.db_table),
        user=quote(get_user_model()._meta.db_table),
    )


def _execute(cursor, template: str, params: dict | None = None) -> int:
    cursor.execute(_sql(template), params)
    return cursor.rowcount


# --- Boosts -----------------------------------------------------------------------------------


@transaction.atomic
def boost_grant(
    *, user, kind: str, value: Decimal, starts_at: datetime, expires_at: datetime
) -> Boost:
    return Boost.objects.create(
        user=user, kind=BoostKind(kind), value=value, starts_at=starts_at, expires_at=expires_at
    )


def boosts_due(*, as_of: datetime):
    """Active boosts whose time has run out."""
    return Boost.objects.filter(status=BoostStatus.ACTIVE, expires_at__lte=as_of)


def boosts_expire_due(
    *,
    as_of: datetime,
    batch_size: int = BOOST_BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
) -> int:
    """Move every active boost with `expires_at <= as_of` to expired, batch by batch.

    Batches walk the primary key upwards, so no batch rescans the rows before it. A boost
    expiry is a bare status flip, so batches are larger than the money sweeps' and the round
    trips few.
    """
    after = 0

    def apply_batch() -> Counter | None:
        nonlocal after
        ids = list(
            boosts_due(as_of=as_of)
            .filter(pk__gt=after)
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return None
        after = ids[-1]
        updated = BOOST_TRANSITIONS.update(
            Boost.objects.filter(expires_at__lte=as_of, pk__in=ids),
            source={BoostStatus.ACTIVE},
            target=BoostStatus.EXPIRED,
            expired_at=timezone.now(),
        )
        if updated != len(ids):
            raise RuntimeError(f"claimed {len(ids)} boosts but expired {updated}")
        return Counter(boosts_expired=updated)

    totals = sweep_in_batches(
        apply_batch=apply_batch, on_progress=on_progress, progress_key="boosts_expired"
    )
    return totals["boosts_expired"]


# --- The recompute ----------------------------------------------------------------------------


def _build_new_scores(cursor, *, as_of: datetime) -> int:
    """Build the classified new standings; returns their row count (removals included)."""
    cursor.execute(f"DROP TABLE IF EXISTS {_dialect().temp_schema}.{NEW_SCORES}")
    params = {
        # SQLite compares datetimes as the text Django stores; PostgreSQL takes the datetime.
        "as_of": connection.ops.adapt_datetimefield_value(as_of),
        "fulfilled": CycleStatus.FULFILLED,
        "active": BoostStatus.ACTIVE,
        "multiplier": BoostKind.MULTIPLIER,
        "points": BoostKind.POINTS,
    }
    if connection.vendor != "postgresql":
        _execute(cursor, standings_sqlite.NEW_SCORES_TABLE_SQL)
        ranked = _execute(cursor, standings_sqlite.NEW_SCORES_SQL, params)
        return ranked + _execute(cursor, standings_sqlite.REMOVED_SCORES_SQL)
    # The statement's plan cost crosses the JIT inlining threshold at a million users, and
    # compiling it then takes about a second that the statement, run once a night, never
    # earns back. A parallel plan runs each aggregate over the whole of its table in every
    # worker (they are the inner side of the joins), so it costs more CPU than it saves.
    cursor.execute("SET LOCAL jit = off")
    cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    # The table is not analyzed: the statements below scan it once each, and without
    # statistics the planner takes `change = 'removed'` for the few rows it usually is.
    return _execute(cursor, _NEW_SCORES_SQL, params)


def _update_entries(cursor, now_params: dict) -> int:
    """Write the `updated` rows. On PostgreSQL, in the new standings' order (the entries'
    order on disk): a hash join, the planner's choice, would write them in its own order; a
    nested loop fetching each entry by address keeps theirs. The planner settings are put
    back afterwards, as the caller's transaction may go on."""
    if connection.vendor != "postgresql":
        return _execute(cursor, _dialect().update, now_params)
    cursor.execute(
        "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin'), "
        "set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"
    )
    hashjoin, mergejoin, _, _ = cursor.fetchone()
    updated = _execute(cursor, _UPDATE_SQL, now_params)
    cursor.execute(
        "SELECT set_config('enable_hashjoin', %s, true), set_config('enable_mergejoin', %s, true)",
        [hashjoin, mergejoin],
    )
    return updated


def _drop_new_scores(cursor) -> None:
    cursor.execute(f"DROP TABLE {_dialect().temp_schema}.{NEW_SCORES}")


def _top_user_ids(cursor) -> list[int]:
    _execute(cursor, _TOP_SQL, {"top": TOP_SAMPLE})
    return [row[0] for row in cursor.fetchall()]


def leaderboard_recompute_preview(*, as_of: datetime) -> dict:
    """What `leaderboard_recompute` would write, computed the same way, writing nothing."""
    with transaction.atomic(), connection.cursor() as cursor:
        _build_new_scores(cursor, as_of=as_of)
        _execute(cursor, _dialect().count)
        ranked, created, updated, removed = cursor.fetchone()
        top = _top_user_ids(cursor)
        _drop_new_scores(cursor)
    return {
        "users_ranked": ranked,
        "entries_created": created,
        "entries_updated": updated,
        "entries_removed": removed,
        "top_user_ids": top,
    }


@transaction.atomic
def leaderboard_recompute(
    *, as_of: datetime, on_ranked: Callable[[int], None] | None = None
) -> dict:
    """Rebuild every active user's score and rank as of `as_of` in one transaction.

    Entries of users who are no longer active (or lost their wallet) are removed; unchanged
    entries are not rewritten. Featured flags are left alone. `on_ranked` is told how many
    users are ranked once the new standings are computed, before any score is written.
    """
    entries_table_lock()
    now_params = {"now": connection.ops.adapt_datetimefield_value(timezone.now())}
    dialect = _dialect()
    with connection.cursor() as cursor:
        rows = _build_new_scores(cursor, as_of=as_of)
        removed = _execute(cursor, dialect.remove)
        if on_ranked:
            on_ranked(rows - removed)
        updated = _update_entries(cursor, now_params)
        created = _execute(cursor, _INSERT_SQL, now_params)
        top = _top_user_ids(cursor)
        _drop_new_scores(cursor)
    return {
        "users_ranked": rows - removed,
        "entries_created": created,
        "entries_updated": updated,
        "entries_removed": removed,
        "top_user_ids": top,
    }
