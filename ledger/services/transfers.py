"""Booking transfers: the only way a balance changes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ledger.lock_objects import system_accounts_lock, wallets_lock
from ledger.models import Asset, SystemAccount, Transfer

TRANSFER_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e8f-9a0b-1c2d3e4f5a6b")

# A wallet has three ledger accounts; their codes name the cached column they live in.
WALLET_BUCKETS = {
    "spendable": ("spendable_balance", Asset.MONEY),
    "receivable": ("receivable_balance", Asset.MONEY),
    "coins": ("charity_coins", Asset.COINS),
}
EXTERNAL_MONEY = "system:external"
COIN_ISSUANCE = "system:coin_issuance"
SOURCE_ACCOUNTS = {EXTERNAL_MONEY: Asset.MONEY, COIN_ISSUANCE: Asset.COINS}


def wallet_account(wallet_id: int, bucket: str) -> str:
    if bucket not in WALLET_BUCKETS:
        raise ValueError(f"unknown wallet bucket {bucket!r}")
    return f"wallet:{wallet_id}:{bucket}"


def transfer_id(reference: str) -> uuid.UUID:
    """Deterministic id of a business event, so booking it twice violates the primary key."""
    return uuid.uuid5(TRANSFER_NAMESPACE, reference)


_TRANSFER_ID_HASH = hashlib.sha1(TRANSFER_NAMESPACE.bytes, usedforsecurity=False)
# The version (5) and variant (RFC 4122) bits that uuid5 sets in the hash's first 16 bytes.
_UUID5_KEEP = ~(0xF000 << 64) & ~(0xC000 << 48)
_UUID5_SET = (0x5000 << 64) | (0x8000 << 48)


def _transfer_id_hex(reference: str) -> str:
    """`transfer_id(reference)` as 32 hex digits, computed without building a UUID object:
    a third of the cost, for the thousands of rows of a batch."""
    digest = _TRANSFER_ID_HASH.copy()
    digest.update(reference.encode())
    value = int.from_bytes(digest.digest()[:16], "big") & _UUID5_KEEP | _UUID5_SET
    return f"{value:032x}"


@dataclasses.dataclass(frozen=True)
class TransferLine:
    reference: str
    kind: str
    asset: str
    amount: int
    debit_account: str
    credit_account: str
    # The business object the booking belongs to (see `SUBJECT_OF_KIND`).
    subject_type: str = ""
    subject_id: int | None = None


def _parse_wallet_account(code: str) -> tuple[int, str] | None:
    parts = code.split(":")
    if len(parts) == 3 and parts[0] == "wallet":
        return int(parts[1]), parts[2]
    return None


def transfers_book(*, lines: Sequence[TransferLine], job_run=None) -> int:
    """Insert the transfers and move the cached balances, in the caller's transaction.

    A reference booked before raises IntegrityError and rolls the whole batch back: the
    caller's conditional status change is the first guard, this is the second. The balance
    rows are locked (in primary-key order) only after the inserts, so a caller that books its
    transfers as the last write of its transaction holds those shared rows briefly.
    """
    if not lines:
        return 0
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("transfers_book must run inside transaction.atomic()")
    wallet_deltas: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(WALLET_BUCKETS, 0))
    system_deltas: dict[str, int] = defaultdict(int)
    for line in lines:
        if line.amount <= 0:
            raise ValueError(f"transfer {line.reference} has a non-positive amount")
        for code, sign in ((line.debit_account, -1), (line.credit_account, 1)):
            parsed = _parse_wallet_account(code)
            if parsed:
                wallet_id, bucket = parsed
                if WALLET_BUCKETS[bucket][1] != line.asset:
                    raise ValueError(f"{code} does not hold {line.asset}")
                wallet_deltas[wallet_id][bucket] += sign * line.amount
            else:
                system_deltas[code] += sign * line.amount

    _ensure_system_accounts(system_deltas, lines)
    _insert_transfers(lines, job_run)
    wallets_lock(wallet_deltas)
    system_accounts_lock(system_deltas)
    _apply_wallet_deltas(wallet_deltas)
    for code, delta in sorted(system_deltas.items()):
        if delta:
            SystemAccount.objects.filter(code=code).update(balance=F("balance") + delta)
    return len(lines)


def _ensure_system_accounts(system_deltas: dict[str, int], lines: Iterable[TransferLine]) -> None:
    assets = {}
    for line in lines:
        for code in (line.debit_account, line.credit_account):
            if code in system_deltas:
                assets[code] = line.asset
    existing = set(SystemAccount.objects.filter(code__in=assets).values_list("code", flat=True))
    missing = [
        SystemAccount(code=code, asset=asset, allow_negative=code in SOURCE_ACCOUNTS)
        for code, asset in assets.items()
        if code not in existing
    ]
    SystemAccount.objects.bulk_create(missing, ignore_conflicts=True)


_TRANSFER_COLUMNS = (
    "id",
    "reference",
    "kind",
    "asset",
    "amount",
    "debit_account",
    "credit_account",
    "subject_type",
    "subject_id",
    "created_at",
    "job_run_id",
    "xact",
)


def _insert_transfers(lines: Sequence[TransferLine], job_run) -> None:
    """Insert the transfer rows; a reference booked before raises IntegrityError.

    On PostgreSQL the rows go through COPY (a plain insert: no ON CONFLICT, so a duplicate
    still fails the batch), which costs a fraction of building and binding model instances.
    Its values are strings and integers, which psycopg writes without a Python-level dumper:
    the id as hex digits, the one timestamp formatted once.
    """
    if connection.vendor != "postgresql":
        Transfer.objects.bulk_create(
            [
                Transfer(
                    id=transfer_id(line.reference),
                    reference=line.reference,
                    kind=line.kind,
                    asset=line.asset,
                    amount=line.amount,
                    debit_account=line.debit_account,
                    credit_account=line.credit_account,
                    subject_type=line.subject_type,
                    subject_id=line.subject_id,
                    job_run=job_run,
                )
                for line in lines
            ],
            batch_size=2_000,
        )
        return
    job_run_id = job_run.pk if job_run is not None else None
    now = timezone.now().isoformat()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        (xact,) = cursor.fetchone()
    sql = f"COPY {Transfer._meta.db_table} ({', '.join(_TRANSFER_COLUMNS)}) FROM STDIN"
    # COPY bypasses Django's cursor wrapper, so a duplicate reference is turned into Django's
    # IntegrityError here, as it would be for an INSERT.
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(sql) as copy,
    ):
        for line in lines:
            copy.write_row(
                (
                    _transfer_id_hex(line.reference),
                    line.reference,
                    line.kind,
                    line.asset,
                    line.amount,
                    line.debit_account,
                    line.credit_account,
                    line.subject_type,
                    line.subject_id,
                    now,
                    job_run_id,
                    xact,
                )
            )


# The deltas travel as one JSON document: far cheaper to encode and bind than four arrays
# (or an IN list) of a batch's thousands of wallets.
_WALLET_DELTAS_POSTGRES = """
UPDATE ledger_wallet SET
    spendable_balance = ledger_wallet.spendable_balance + deltas.spendable,
    receivable_balance = ledger_wallet.receivable_balance + deltas.receivable,
    charity_coins = ledger_wallet.charity_coins + deltas.coins
FROM jsonb_to_recordset(%s::jsonb)
    AS deltas(id bigint, spendable bigint, receivable bigint, coins bigint)
WHERE ledger_wallet.id = deltas.id
"""


def _apply_wallet_deltas(wallet_deltas: dict[int, dict[str, int]], chunk: int = 2_000) -> None:
    """One set-based UPDATE (per chunk of wallets elsewhere than PostgreSQL), adding each
    wallet's net change."""
    rows = sorted(wallet_deltas.items())
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _WALLET_DELTAS_POSTGRES,
                [json.dumps([{"id": wallet_id, **delta} for wallet_id, delta in rows])],
            )
        return
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        values = ", ".join(
            ["(CAST(%s AS BIGINT), CAST(%s AS BIGINT), CAST(%s AS BIGINT), CAST(%s AS BIGINT))"]
            * len(part)
        )
        params: list[int] = []
        for wallet_id, delta in part:
            params += [wallet_id, delta["spendable"], delta["receivable"], delta["coins"]]
        sql = (
            f"WITH deltas(id, spendable, receivable, coins) AS (VALUES {values}) "
            "UPDATE ledger_wallet SET "
            "spendable_balance = ledger_wallet.spendable_balance + deltas.spendable, "
            "receivable_balance = ledger_wallet.receivable_balance + deltas.receivable, "
            "charity_coins = ledger_wallet.charity_coins + deltas.coins "
            "FROM deltas WHERE ledger_wallet.id = deltas.id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
