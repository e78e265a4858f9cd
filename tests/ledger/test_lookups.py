"""The `any` lookup: the same rows as `__in`, with the list bound as one array."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ledger.models import DonationCycle, Wallet
from tests.factories import WalletFactory, donation_at

pytestmark = pytest.mark.django_db


def test_any_selects_the_rows_in_the_list_and_binds_it_as_one_parameter():
    wallets = WalletFactory.create_batch(5)
    wanted = [wallets[0].pk, wallets[3].pk, 10**12]

    with CaptureQueriesContext(connection) as queries:
        found = sorted(Wallet.objects.filter(pk__any=wanted).values_list("pk", flat=True))

    assert found == sorted(Wallet.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    assert found == [wallets[0].pk, wallets[3].pk]
    assert "= ANY(" in queries[0]["sql"]
    assert "IN (" not in queries[0]["sql"]


def test_any_of_an_empty_list_matches_nothing_and_excluding_it_matches_everything():
    WalletFactory.create_batch(2)

    assert not Wallet.objects.filter(pk__any=[]).exists()
    assert Wallet.objects.exclude(pk__any=[]).count() == 2


def test_any_works_on_a_relation_by_id():
    first, second = donation_at(at=timezone.now()), donation_at(at=timezone.now())

    cycles = DonationCycle.objects.filter(donation_id__any=[first.pk])

    assert [cycle.donation_id for cycle in cycles] == [first.pk]
    assert DonationCycle.objects.filter(donation_id=second.pk).exists()
