from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from jobs.cron import CronError, next_slots, slot_of, slots_between, validate_cron
from jobs.registry import all_jobs
from tests.scheduling.helpers import registered_job


@pytest.mark.parametrize(
    "spec", ["0 * * * *", "*/15 0-6 1,15 * 1-5", "@daily", "0 0 * * 7", "30 3 * * *", "0 0 * * 1"]
)
def test_valid_specs_pass(spec):
    assert len(validate_cron(spec).split()) == 5


def test_every_registered_job_has_a_valid_cron():
    for spec in all_jobs():
        validate_cron(spec.cron)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("61 * * * *", "minute 61"),
        ("* 24 * * *", "hour 24"),
        ("* * 0 * *", "day of month 0"),
        ("* * * 13 *", "month 13"),
        ("* * * *", "has 4 fields"),
        ("a * * * *", "not a number"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "backwards"),
        ("@fortnightly", "unknown alias"),
    ],
)
def test_malformed_and_out_of_range_specs_are_errors(spec, message):
    with pytest.raises(CronError, match=message):
        validate_cron(spec)


@pytest.mark.parametrize(
    "spec", ["0 0 * * 0", "0 0 * * sun", "0 0 * * SUN", "@weekly", "0 0 * * 0-2"]
)
def test_sunday_written_as_zero_sun_or_weekly_is_an_error(spec):
    with pytest.raises(CronError, match="write Sunday as 7"):
        validate_cron(spec)


def test_sunday_written_as_seven_fires_on_sundays():
    slots = next_slots("0 0 * * 7", datetime(2026, 11, 23, tzinfo=UTC), 3)
    assert [slot.isoweekday() for slot in slots] == [7, 7, 7]
    assert slots[0] == datetime(2026, 11, 29, tzinfo=UTC)


def test_slots_between_lists_each_firing_in_the_window():
    start = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    slots = list(slots_between("0 * * * *", start, datetime(2026, 11, 23, 12, 0, tzinfo=UTC)))
    assert slots == [datetime(2026, 11, 23, hour, tzinfo=UTC) for hour in (10, 11, 12)]


def test_slot_is_the_tick_minute_in_utc():
    assert slot_of(datetime(2026, 11, 23, 10, 0, 0, 700_000, tzinfo=UTC)) == datetime(
        2026, 11, 23, 10, tzinfo=UTC
    )


def test_manage_py_check_names_the_job_with_a_bad_cron():
    with registered_job("nightly_bad", cron="0 0 * * 0"), pytest.raises(SystemCheckError) as error:
        call_command("check")
    assert "job nightly_bad" in str(error.value)
    assert "write Sunday as 7" in str(error.value)


def test_runscheduler_refuses_to_start_with_a_bad_cron():
    from django.core.management.base import CommandError

    with registered_job("minutely_bad", cron="61 * * * *"), pytest.raises(CommandError) as error:
        call_command("runscheduler", "--check", skip_checks=True)
    assert "minutely_bad" in str(error.value)
