"""Cron specs and durations in words."""

import pytest

from jobs.cron import cron_in_words
from jobs.panels import millis_text


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("* * * * *", "every minute"),
        ("*/5 * * * *", "every 5 minutes"),
        ("*/1 * * * *", "every minute"),
        ("0 * * * *", "every hour at :00"),
        ("@hourly", "every hour at :00"),
        ("30 * * * *", "every hour at :30"),
        ("0 */6 * * *", "every 6 hours"),
        ("15 */2 * * *", "every 2 hours at :15"),
        ("0 9 * * *", "every day at 09:00"),
        ("30 3 * * *", "every day at 03:30"),
        ("0 9,21 * * *", "every day at 09:00 and 21:00"),
        ("@daily", "every day at 00:00"),
        ("0 0 * * 1", "Mondays at 00:00"),
        ("0 0 * * 7", "Sundays at 00:00"),
        ("0 8 * * 1,3,5", "Mondays, Wednesdays and Fridays at 08:00"),
        ("0 0 1 * *", "on day 1 of every month at 00:00"),
    ],
)
def test_common_shapes_read_as_words(spec, words):
    assert cron_in_words(spec) == words


@pytest.mark.parametrize(
    "spec", ["0 0 1 1 *", "0-30/10 * * * *", "0 9 * * 1-5", "*/5 9-17 * * *", "not a cron"]
)
def test_other_specs_are_shown_as_they_are(spec):
    assert cron_in_words(spec) == spec


# --- Money and run summaries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kobo", "text"),
    [
        (0, "₦0.00"),
        (5, "₦0.05"),
        (123_456, "₦1,234.56"),
        (1_030_700, "₦10,307.00"),
        (-250, "-₦2.50"),
    ],
)
def test_money_reads_as_naira_with_thousands_separators(kobo, text):
    from jobs.panels import money_text
    from ledger.selectors import money_text as ledger_money_text

    assert money_text(kobo) == text
    assert ledger_money_text(kobo) == text  # one implementation


def test_the_currency_symbol_is_a_setting(settings):
    from jobs.panels import money_text

    settings.STEWARD_CURRENCY = "NGN "
    assert money_text(123_456) == "NGN 1,234.56"


def test_a_summary_reads_as_labelled_figures_with_its_money():
    from jobs.panels import summary_figures

    summary = {
        "escrows_released": 1_204,
        "amount_released": 1_030_700,
        "dry_run": True,
        "lagging": False,
        "sample_ids": [16, 17],
        "due_by_channel": {"email": 3, "sms": 1},
        "games": {"chess": {"pools": []}},
    }

    listed = summary_figures(summary, money_keys=("amount_released",))
    detailed = summary_figures(summary, money_keys=("amount_released",), detail=True)

    assert [(f.label, f.value) for f in listed] == [
        ("Amount released", "₦10,307.00"),
        ("Escrows released", "1,204"),
        ("Lagging", "no"),
    ]
    assert [(f.label, f.value) for f in detailed] == [
        ("Amount released", "₦10,307.00"),
        ("Due by channel", "email 3, sms 1"),
        ("Escrows released", "1,204"),
        ("Lagging", "no"),
        ("Sample ids", "16, 17"),
    ]


def test_the_money_keys_come_from_the_job_registration():
    from jobs.panels import job_money_keys

    assert job_money_keys("release_escrows") == ("amount_released",)
    assert job_money_keys("finalize_prize_pools") == ("prize_paid",)
    assert job_money_keys("monitor_business_lag") == ("overdue_amount",)
    assert job_money_keys("no_longer_registered") == ()


@pytest.mark.parametrize(
    ("ms", "words"),
    [
        (None, "—"),
        (0, "0 ms"),
        (842, "842 ms"),
        (1_234, "1.2 s"),
        (9_949, "9.9 s"),
        (12_345, "12 s"),
        (59_499, "59 s"),
        (60_000, "1 min"),
        (200_000, "3 min 20 s"),
        (3_600_000, "1 h"),
        (7_500_000, "2 h 5 min"),
    ],
)
def test_durations_read_in_the_unit_that_fits(ms, words):
    assert millis_text(ms) == words
