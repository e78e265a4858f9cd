"""Cron specs in words."""

import pytest

from jobs.cron import cron_in_words


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
