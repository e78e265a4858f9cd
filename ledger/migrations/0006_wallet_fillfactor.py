"""Leave half of each wallet page free on PostgreSQL, so that a balance change (every booking
updates its wallets, a release batch thousands of them) can put the new row version on the
same page: a heap-only update, which writes no index entry."""

from django.db import migrations

WALLET_FILLFACTOR = 50


def wallet_fillfactor_set(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE ledger_wallet SET (fillfactor = {WALLET_FILLFACTOR})")


def wallet_fillfactor_reset(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE ledger_wallet RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0005_milestones_snapshots_transfer_subjects"),
    ]

    operations = [
        migrations.RunPython(wallet_fillfactor_set, wallet_fillfactor_reset),
    ]
