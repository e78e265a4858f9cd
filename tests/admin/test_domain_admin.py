"""The ledger and leaderboard in the admin: read-only rows and the guarded job actions."""

from datetime import date, timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from jobs.models import JobRun, Trigger
from leaderboard.services.pools import prize_pool_open
from tests.api.helpers import PAUSE, RETRY, TRIGGER, user_with
from tests.factories import HOLD, donation_at, funded_wallet

pytestmark = pytest.mark.django_db

ESCROWS = reverse("admin:ledger_escrow_changelist")
POOLS = reverse("admin:leaderboard_prizepool_changelist")


def apply(client, url, name, selected, reason):
    return client.post(
        url, {"action": name, "_selected_action": selected, "apply": "1", "reason": reason}
    )


@pytest.mark.parametrize("app_label", ["ledger", "leaderboard"])
def test_every_domain_model_has_a_working_admin_list(admin_client_for, app_label):
    # given some data in every table
    donation_at(at=timezone.now() - HOLD)
    client = admin_client_for(user_with(superuser=True))

    for model in apps.get_app_config(app_label).get_models():
        if model in admin.site._registry:
            url = reverse(f"admin:{app_label}_{model._meta.model_name}_changelist")
            assert client.get(url).status_code == 200, url


def test_a_wallet_shows_balances_read_only_and_its_transfers(admin_client_for):
    wallet = funded_wallet(amount=12_345)
    client = admin_client_for(user_with("ledger.view_wallet"))

    response = client.get(reverse("admin:ledger_wallet_change", args=[wallet.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="spendable_balance"' not in page  # shown as text, not as an input
    assert "₦123.45" in page  # kobo with the currency
    assert f"wallet:{wallet.pk}:spendable" in page
    assert "Deposit" in page
    assert client.post(reverse("admin:ledger_wallet_add")).status_code == 403


def test_escrows_filter_by_status_and_whether_they_are_due(admin_client_for):
    now = timezone.now()
    overdue = donation_at(at=now - HOLD - timedelta(hours=1)).escrow
    holding = donation_at(at=now).escrow
    client = admin_client_for(user_with("ledger.view_escrow"))

    due = client.get(ESCROWS, {"due": "overdue"}).context["cl"].result_list
    not_due = client.get(ESCROWS, {"due": "holding"}).context["cl"].result_list
    by_status = client.get(ESCROWS, {"status__exact": "holding"}).context["cl"].result_list

    assert [escrow.pk for escrow in due] == [overdue.pk]
    assert [escrow.pk for escrow in not_due] == [holding.pk]
    assert {escrow.pk for escrow in by_status} == {overdue.pk, holding.pk}


@pytest.mark.parametrize(
    ("url", "action", "job", "make_row"),
    [
        (
            ESCROWS,
            "release_due_escrows",
            "release_escrows",
            lambda: donation_at(at=timezone.now()).escrow,
        ),
        (
            POOLS,
            "finalize_ended_pools",
            "finalize_prize_pools",
            lambda: prize_pool_open(game="snake", period="daily", period_start=date(2026, 3, 1)),
        ),
    ],
)
def test_job_actions_on_domain_rows_queue_the_job_as_the_operator(
    admin_client_for, url, action, job, make_row
):
    # given a row to select and an operator allowed to trigger runs
    row = make_row()
    model_perm = f"{row._meta.app_label}.view_{row._meta.model_name}"
    operator = user_with(model_perm, TRIGGER)
    client = admin_client_for(operator)

    # when they run the action and give a reason
    confirm = client.post(url, {"action": action, "_selected_action": [row.pk]})
    response = apply(client, url, action, [row.pk], reason="support ticket 42")

    # then the same job the schedule runs is queued, recorded as theirs
    assert "not only the selected rows" in confirm.content.decode()
    assert response.status_code == 302
    run = JobRun.objects.get()
    assert (run.job, run.trigger, run.dry_run) == (job, Trigger.ADMIN, False)
    assert (run.requested_by, run.reason) == (operator.username, "support ticket 42")


@pytest.mark.parametrize(
    ("url", "action", "make_row"),
    [
        (ESCROWS, "release_due_escrows", lambda: donation_at(at=timezone.now()).escrow),
        (
            POOLS,
            "finalize_ended_pools",
            lambda: prize_pool_open(game="pong", period="daily", period_start=date(2026, 3, 1)),
        ),
    ],
)
def test_job_actions_on_domain_rows_are_refused_without_the_permission(
    admin_client_for, url, action, make_row
):
    row = make_row()
    model_perm = f"{row._meta.app_label}.view_{row._meta.model_name}"
    client = admin_client_for(user_with(model_perm, PAUSE, RETRY))

    page = client.get(url).content.decode()
    apply(client, url, action, [row.pk], reason="sneaky")

    assert f'value="{action}"' not in page
    assert not JobRun.objects.exists()


def test_money_in_the_ledger_lists_reads_as_naira(admin_client_for, settings):
    settings.ESCROW_LAG_ALERT_MINUTES = 120
    now = timezone.now()
    due = donation_at(at=now - HOLD - timedelta(minutes=10), amount=1_030_700).escrow
    donation_at(at=now - HOLD - timedelta(hours=3), amount=4_000)
    client = admin_client_for(user_with(superuser=True))

    escrows = client.get(ESCROWS).content.decode()
    wallets = client.get(reverse("admin:ledger_wallet_changelist")).content.decode()
    transfers = client.get(reverse("admin:ledger_transfer_changelist")).content.decode()
    escrow_page = client.get(reverse("admin:ledger_escrow_change", args=[due.pk])).content

    assert "₦10,307.00" in escrows and "₦40.00" in escrows
    assert "1030700" not in escrows
    assert ">due</span>" in escrows and ">overdue</span>" in escrows  # past the alert threshold
    assert "₦" in wallets and "₦10,307.00" in transfers
    assert "₦10,307.00" in escrow_page.decode()  # the change page too
