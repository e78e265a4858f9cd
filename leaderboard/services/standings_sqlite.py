"""The leaderboard recompute's statements for SQLite, the default database of `make run`.

They build the same classified new standings as the PostgreSQL statement in `standings`, in
a temporary table of the same name and columns, and give the same scores and ranks. SQLite
has no exact decimal type (a decimal column holds a double), so the formula runs on integers:
completion times in microseconds, averages in hundredths of a day, the multiplier product in
units of 10⁻⁸, scores in hundredths of a point. Each rounding is half away from zero, as
PostgreSQL's ROUND of a numeric is. The multiplier product is exp(Σ ln) in double precision,
as on PostgreSQL.

Only what SQLite 3.31 (Django 5.2's oldest) knows is used: no FULL JOIN, UPDATE ... FROM or
IS DISTINCT FROM. Placeholders as in `standings`.
"""

# Keyed by user, so that the removals, updates and classification below find a row by rowid.
NEW_SCORES_TABLE_SQL = """
CREATE TEMPORARY TABLE {new} (
    user_id INTEGER PRIMARY KEY,
    cycles_completed INTEGER,
    avg_days REAL,
    score REAL,
    rank INTEGER,
    change TEXT
)
"""

# Django stores a datetime as the text 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC: the whole
# seconds come from strftime, the microseconds from the digits after the dot (SQLite's own
# date functions keep milliseconds only). The mean is over the cycles with both times, as
# AVG's; a hundredth of a day is 864,000,000 µs. Integer division truncates toward zero, so
# adding half the divisor with the dividend's sign first rounds half away from zero. The score
# stays exact while base × multiplier is under about 900 million points; past that SQLite's
# integer product turns into a double.
NEW_SCORES_SQL = """
INSERT INTO {new} (user_id, cycles_completed, avg_days, score, rank, change)
WITH cycle_times AS (
    SELECT wallet_id,
           (strftime('%%s', substr(fulfilled_at, 1, 19))
            - strftime('%%s', substr(obligated_at, 1, 19))) * 1000000
           + CAST(substr(fulfilled_at, 21) AS INTEGER)
           - CAST(substr(obligated_at, 21) AS INTEGER) AS elapsed_us
    FROM {cycle}
    WHERE status = %(fulfilled)s AND fulfilled_at <= %(as_of)s
),
cycle_stats AS (
    SELECT wallet_id,
           COUNT(*) AS completed,
           (2 * SUM(elapsed_us)
            + CASE WHEN SUM(elapsed_us) < 0 THEN -1 ELSE 1 END * 864000000 * COUNT(elapsed_us))
               / (2 * 864000000 * COUNT(elapsed_us)) AS avg_centidays
    FROM cycle_times
    GROUP BY wallet_id
),
boost_stats AS (
    SELECT user_id,
           CAST(ROUND(EXP(SUM(LN(value)) FILTER (WHERE kind = %(multiplier)s)) * 100000000)
                AS INTEGER) AS multiplier_e8,
           SUM(CAST(ROUND(value * 100) AS INTEGER)) FILTER (WHERE kind = %(points)s)
               AS points_cents
    FROM {boost}
    WHERE status = %(active)s AND starts_at <= %(as_of)s AND expires_at > %(as_of)s
    GROUP BY user_id
),
scored AS (
    SELECT wallet.user_id,
           COALESCE(cycle_stats.completed, 0) AS cycles_completed,
           cycle_stats.avg_centidays,
           ((10000 * COALESCE(cycle_stats.completed, 0)
             + 10 * MAX(0, 3000 - COALESCE(cycle_stats.avg_centidays, 3000)))
            * COALESCE(boost_stats.multiplier_e8, 100000000) + 50000000) / 100000000
           + COALESCE(boost_stats.points_cents, 0) AS score_cents
    FROM {wallet} AS wallet
    JOIN {user} AS account ON account.id = wallet.user_id AND account.is_active
    LEFT JOIN cycle_stats ON cycle_stats.wallet_id = wallet.id
    LEFT JOIN boost_stats ON boost_stats.user_id = wallet.user_id
),
ranked AS (
    SELECT user_id, cycles_completed, avg_centidays, score_cents,
           ROW_NUMBER() OVER (ORDER BY score_cents DESC, user_id) AS rank
    FROM scored
)
SELECT ranked.user_id, ranked.cycles_completed, ranked.avg_centidays / 100.0,
       ranked.score_cents / 100.0, ranked.rank,
       CASE
           WHEN entry.user_id IS NULL THEN 'created'
           WHEN entry.rank IS NOT ranked.rank
                OR entry.cycles_completed IS NOT ranked.cycles_completed
                OR CAST(ROUND(entry.score * 100) AS INTEGER) IS NOT ranked.score_cents
                OR CAST(ROUND(entry.average_completion_days * 100) AS INTEGER)
                   IS NOT ranked.avg_centidays
               THEN 'updated'
       END
FROM ranked LEFT JOIN {entry} AS entry ON entry.user_id = ranked.user_id
"""

# The other half of PostgreSQL's FULL JOIN: entries whose user is no longer ranked.
REMOVED_SCORES_SQL = """
INSERT INTO {new} (user_id, change)
SELECT entry.user_id, 'removed'
FROM {entry} AS entry
WHERE NOT EXISTS (SELECT 1 FROM {new} AS ranked WHERE ranked.user_id = entry.user_id)
"""

REMOVE_SQL = """
DELETE FROM {entry} WHERE user_id IN (SELECT user_id FROM {new} WHERE change = 'removed')
"""

UPDATE_SQL = """
UPDATE {entry}
SET (score, rank, cycles_completed, average_completion_days) = (
        SELECT score, rank, cycles_completed, avg_days
        FROM {new}
        WHERE {new}.user_id = {entry}.user_id
    ),
    updated_at = %(now)s
WHERE user_id IN (SELECT user_id FROM {new} WHERE change = 'updated')
"""

COUNT_SQL = """
SELECT COUNT(*) FILTER (WHERE change IS NOT 'removed'),
       COUNT(*) FILTER (WHERE change = 'created'),
       COUNT(*) FILTER (WHERE change = 'updated'),
       COUNT(*) FILTER (WHERE change = 'removed')
FROM {new}
"""
