"""update_leaderboard on SQLite, the default database of `make run`: the same standings as on
PostgreSQL, and every job succeeding on a fresh demo database.

The suite runs on PostgreSQL, so SQLite is reached through `manage.py` subprocesses whose
DATABASE_URL names a SQLite file under the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import serializers

from leaderboard.models import Boost, BoostKind, BoostStatus, LeaderboardEntry
from leaderboard.services.standings import leaderboard_recompute
from ledger.models import Donation, DonationCycle, Match, Wallet
from tests.factories import UserFactory, WalletFactory, funded_wallet, obligated_cycle
from tests.leaderboard.factories import (
    MONDAY,
    BoostFactory,
    LeaderboardEntryFactory,
    fulfilled_cycle,
)
from tests.ledger.helpers import run_job

AS_OF = MONDAY
YESTERDAY = AS_OF - timedelta(days=1)
DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)
# What the recompute reads, parents first so that a fixture of them loads in order.
DATASET_MODELS = (get_user_model(), Wallet, Match, Donation, DonationCycle, Boost, LeaderboardEntry)
# Boost windows around as_of: (starts_at, expires_at).
WINDOWS = {
    "running": (AS_OF - 7 * DAY, AS_OF + 7 * DAY),
    "ends_at_as_of": (AS_OF - 7 * DAY, AS_OF),
    "ended_today": (AS_OF - 7 * DAY, AS_OF - timedelta(hours=6)),
    "ends_just_after": (AS_OF - 7 * DAY, AS_OF + MICROSECOND),
    "starts_at_as_of": (AS_OF, AS_OF + 7 * DAY),
    "starts_later": (AS_OF + DAY, AS_OF + 7 * DAY),
}
# Some of them (1.15, 0.29, 4.35) are a little under their value as binary floating point.
MULTIPLIERS = ("1.05", "1.10", "1.15", "1.25", "1.50", "2.00", "3.33")
POINTS = ("0.10", "0.20", "0.01", "0.29", "4.35", "10.50", "25.00", "99.99")


# --- SQLite through manage.py -----------------------------------------------------------------


def _manage(database: Path, *args: str) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "DATABASE_URL": f"sqlite:///{database}",
            "REDIS_URL": settings.REDIS_URL,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, (args, completed.stdout[-3000:], completed.stderr[-3000:])
    return completed


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite database with every migration applied, to copy from."""
    database = tmp_path_factory.mktemp("sqlite") / "migrated.sqlite3"
    _manage(database, "migrate", "--noinput")
    return database


@pytest.fixture
def sqlite_database(migrated_sqlite, tmp_path) -> Path:
    """A fresh, migrated SQLite database of this test's own."""
    database = tmp_path / "db.sqlite3"
    shutil.copyfile(migrated_sqlite, database)
    return database


def _sqlite_run(database: Path, *, as_of: datetime, dry_run: bool = False) -> dict:
    args = ["runjob", "update_leaderboard", "--json", "--as-of", as_of.isoformat()]
    out = _manage(database, *args, *(["--dry-run"] if dry_run else [])).stdout
    return json.loads(out.strip().splitlines()[-1])


def _sqlite_standings(database: Path) -> list[tuple]:
    entries = json.loads(_manage(database, "dumpdata", "leaderboard.leaderboardentry").stdout)
    rows = [
        (
            entry["pk"],
            entry["fields"]["rank"],
            Decimal(entry["fields"]["score"]),
            entry["fields"]["cycles_completed"],
            _decimal_or_none(entry["fields"]["average_completion_days"]),
        )
        for entry in entries
    ]
    return sorted(rows, key=lambda row: row[1])


def _decimal_or_none(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


# --- The dataset, built on PostgreSQL ---------------------------------------------------------


def _postgres_standings() -> list[tuple]:
    return list(
        LeaderboardEntry.objects.order_by("rank").values_list(
            "user_id", "rank", "score", "cycles_completed", "average_completion_days"
        )
    )


def _dataset_dump(path: Path) -> None:
    """Every row the recompute reads, as a loaddata fixture that keeps microseconds.

    (dumpdata's JSON encoder cuts datetimes to milliseconds, which would move averages.)
    """
    rows = [
        row
        for model in DATASET_MODELS
        for row in serializers.serialize("python", model.objects.order_by("pk"))
    ]

    def encode(value):
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        raise TypeError(f"cannot encode {value!r}")

    path.write_text(json.dumps(rows, default=encode))


def _cycles(wallet: Wallet, donor: Wallet, *took: timedelta) -> None:
    """One cycle per duration, fulfilled that long after its obligation: the first exactly at
    as_of (so yesterday's standings miss it), each next one a week earlier."""
    for weeks, duration in enumerate(took):
        fulfilled_at = AS_OF - weeks * 7 * DAY
        fulfilled_cycle(
            wallet=wallet, donor=donor, obligated_at=fulfilled_at - duration, days=duration / DAY
        )


def _boost(wallet: Wallet, kind: str, value: str, window: str = "running", **fields) -> Boost:
    starts_at, expires_at = WINDOWS[window]
    return BoostFactory(
        user=wallet.user,
        kind=kind,
        value=Decimal(value),
        starts_at=starts_at,
        expires_at=expires_at,
        **fields,
    )


@pytest.fixture
def dataset():
    """Hand-picked edge cases and seeded random users, standings computed yesterday, and the
    day's changes since: users who joined, left, or lost their wallet's entry."""
    rng = random.Random(20260302)
    # Obligated cycles first: their release sweeps every escrow due by then.
    obligated_cycle(due_at=AS_OF + 10 * DAY, wallet=WalletFactory())
    donor = funded_wallet()
    donor.user.is_active = False
    donor.user.save()
    edge = {
        name: WalletFactory()
        for name in (
            "half_average",
            "under_half",
            "over_half",
            "half_score",
            "four",
            "float",
            "thirty",
            "leaving",
        )
    }
    # An average of exactly 1.005 days rounds up to 1.01: 200 + 10 × 28.99 = 489.90.
    _cycles(edge["half_average"], donor, DAY, timedelta(days=1.01))
    # 1.005 days less a microsecond: 1.00 (390.00). Exactly 1.005 days between two times at
    # .999999 seconds: 1.01 (389.90). Dropping either time's microseconds moves one of them.
    half = timedelta(days=1.005)
    _cycles(edge["under_half"], donor, half - MICROSECOND)
    fulfilled_cycle(
        wallet=edge["over_half"],
        donor=donor,
        obligated_at=AS_OF - 3 * DAY + timedelta(microseconds=999_999),
        days=half / DAY,
    )
    # 1.83 days: (100 + 10 × 28.17) × 1.05 = 400.785, which rounds up to 400.79.
    _cycles(edge["half_score"], donor, timedelta(days=1.83))
    _boost(edge["half_score"], BoostKind.MULTIPLIER, "1.05")
    # Four multipliers at once, their product a little under 3.6225 in floating point:
    # 370 × 1.05 × 1.15 × 1.50 × 2.00 = 1340.325, which rounds up to 1340.33.
    _cycles(edge["four"], donor, 3 * DAY)
    for value in ("1.05", "1.15", "1.50", "2.00"):
        _boost(edge["four"], BoostKind.MULTIPLIER, value)
    # 0.10 + 0.20 and 0.29 + 0.01, inexact in binary floating point, are both 0.30: a tie.
    _boost(edge["float"], BoostKind.POINTS, "0.10")
    _boost(edge["float"], BoostKind.POINTS, "0.20")
    _boost(edge["thirty"], BoostKind.POINTS, "0.29")
    _boost(edge["thirty"], BoostKind.POINTS, "0.01")
    _cycles(edge["leaving"], donor, 2 * DAY)
    # Two users far ahead of everybody: the first loses 10 points since yesterday but keeps
    # its rank, the second's entry stays as it was.
    first, second = WalletFactory(), WalletFactory()
    _boost(first, BoostKind.POINTS, "100000")
    _boost(first, BoostKind.POINTS, "10", "ended_today")
    _boost(second, BoostKind.POINTS, "90000")
    # Identical twins tie; a boost that was expired early no longer counts.
    for _ in range(2):
        twin = WalletFactory()
        _cycles(twin, donor, 3 * DAY)
        _boost(twin, BoostKind.POINTS, "5.00")
        _boost(twin, BoostKind.POINTS, "50", status=BoostStatus.EXPIRED, expired_at=AS_OF - DAY)
    # A cycle fulfilled a microsecond after as_of does not count.
    fulfilled_cycle(
        wallet=WalletFactory(),
        donor=donor,
        obligated_at=AS_OF - DAY,
        days=(DAY + MICROSECOND) / DAY,
    )
    for _ in range(16):
        wallet = WalletFactory()
        took = [
            timedelta(microseconds=rng.randrange(1, 45 * 86_400_000_000))
            for _ in range(rng.randrange(4))
        ]
        _cycles(wallet, donor, *took)
        for _ in range(rng.randrange(4)):
            kind = rng.choice(BoostKind.values)
            values = MULTIPLIERS if kind == BoostKind.MULTIPLIER else POINTS
            _boost(wallet, kind, rng.choice(values), rng.choice(list(WINDOWS)))
    leaderboard_recompute(as_of=YESTERDAY)
    # Since yesterday: new users, tied at nothing; a user left; an entry of a user without a
    # wallet.
    for _ in range(3):
        WalletFactory()
    edge["leaving"].user.is_active = False
    edge["leaving"].user.save()
    LeaderboardEntryFactory(user=UserFactory(), rank=1, score=Decimal("999"))
    return edge


# --- Tests ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sqlite_gives_the_same_standings_as_postgresql(dataset, sqlite_database, tmp_path):
    # given the dataset on PostgreSQL and the same rows, ids included, in a SQLite database
    fixture = tmp_path / "dataset.json"
    _dataset_dump(fixture)
    _manage(sqlite_database, "loaddata", str(fixture))

    # when both dry-run, then run, update_leaderboard as of Monday midnight
    postgres_dry = run_job("update_leaderboard", as_of=AS_OF, dry_run=True)
    postgres_run = run_job("update_leaderboard", as_of=AS_OF)
    sqlite_dry = _sqlite_run(sqlite_database, as_of=AS_OF, dry_run=True)
    sqlite_run = _sqlite_run(sqlite_database, as_of=AS_OF)

    # then both succeed with the same previews and the same summaries
    assert postgres_run.status == sqlite_run["status"] == "succeeded", sqlite_run["error"]
    assert sqlite_dry["summary"] == postgres_dry.summary
    assert sqlite_run["summary"] == postgres_run.summary
    # and the same standings, row by row
    postgres = _postgres_standings()
    assert _sqlite_standings(sqlite_database) == postgres
    # and the dataset reached what it is meant to: every kind of change, rounding at a half,
    # ties on a score
    summary = postgres_run.summary
    assert summary["boosts_expired"] > 0
    assert min(summary[f"entries_{change}"] for change in ("created", "updated", "removed")) > 0
    assert summary["users_ranked"] > summary["entries_created"] + summary["entries_updated"]
    by_user = {row[0]: row for row in postgres}
    assert by_user[dataset["half_average"].user_id][2:] == (Decimal("489.90"), 2, Decimal("1.01"))
    assert by_user[dataset["under_half"].user_id][2:] == (Decimal("390.00"), 1, Decimal("1.00"))
    assert by_user[dataset["over_half"].user_id][2:] == (Decimal("389.90"), 1, Decimal("1.01"))
    assert by_user[dataset["half_score"].user_id][2:] == (Decimal("400.79"), 1, Decimal("1.83"))
    assert by_user[dataset["four"].user_id][2] == Decimal("1340.33")
    floats, thirty = by_user[dataset["float"].user_id], by_user[dataset["thirty"].user_id]
    assert (floats[2], thirty[2], thirty[1] - floats[1]) == (Decimal("0.30"), Decimal("0.30"), 1)
    scores = [row[2] for row in postgres]
    assert len(set(scores)) < len(scores) - 3


def test_every_job_succeeds_on_a_fresh_sqlite_demo_database(sqlite_database):
    # given a fresh SQLite database with the demo data, as `make run` leaves it
    _manage(sqlite_database, "seed_demo", "--if-empty")

    # when every job is dry-run, then run, from the command line
    dry = _manage(sqlite_database, "runjob", "--all", "--dry-run", "--json")
    real = _manage(sqlite_database, "runjob", "--all", "--json")

    # then every run succeeded (the command exits 0 only then)
    for completed in (dry, real):
        runs = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
        assert {run["status"] for run in runs} == {"succeeded"}, runs
        assert "update_leaderboard" in {run["job"] for run in runs}
