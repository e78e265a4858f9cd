"""What every reconciliation check shares: running its query, and its outcome's shape."""

from __future__ import annotations

from django.db import connection

from ledger.services.transfers import WALLET_BUCKETS

MAX_REPORTED = 100


def rows(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def wallet_union(template: str) -> str:
    return "\nUNION ALL\n".join(
        template.format(bucket=bucket, column=column, asset=asset)
        for bucket, (column, asset) in WALLET_BUCKETS.items()
    )


def check(name: str, differences: list[dict]) -> dict:
    return {
        "check": name,
        "ok": not differences,
        "differences": len(differences),
        "sample": differences[:MAX_REPORTED],
    }
