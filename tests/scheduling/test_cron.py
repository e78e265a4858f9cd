from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from jobs.cron import (
    CronError,
    next_slots,
    slot_of,
    slots_between,
    validate_cron,
    validate_timezone,
)
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
    "spec", ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * SUN", "@weekly"]
)
def test_sunday_written_as_zero_seven_sun_or_weekly_fires_on_sundays(spec):
    slots = next_slots(spec, datetime(2026, 11, 23, tzinfo=UTC), 3)
    assert [slot.isoweekday() for slot in slots] == [7, 7, 7]
    assert slots[0] == datetime(2026, 11, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "error"), [("Mars/Base", "unknown time zone"), ("", "unknown time zone")]
)
def test_unknown_time_zones_are_errors(zone, error):
    with pytest.raises(CronError, match=error):
        validate_timezone(zone)


def test_slots_between_lists_each_firing_in_the_window():
    start = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    slots = list(slots_between("0 * * * *", start, datetime(2026, 11, 23, 12, 0, tzinfo=UTC)))
    assert slots == [datetime(2026, 11, 23, hour, tzinfo=UTC) for hour in (10, 11, 12)]


def test_slot_is_the_tick_minute_in_utc():
    assert slot_of(datetime(2026, 11, 23, 10, 0, 0, 700_000, tzinfo=UTC)) == datetime(
        2026, 11, 23, 10, tzinfo=UTC
    )


def test_manage_py_check_names_the_job_with_a_bad_cron():
    with registered_job("nightly_bad", cron="0 0 * * 8"), pytest.raises(SystemCheckError) as error:
        call_command("check")
    assert "job nightly_bad" in str(error.value)
    assert "day of week 8" in str(error.value)


def test_runscheduler_refuses_to_start_with_a_bad_cron():
    from django.core.management.base import CommandError

    with registered_job("minutely_bad", cron="61 * * * *"), pytest.raises(CommandError) as error:
        call_command("runscheduler", "--check", skip_checks=True)
    assert "minutely_bad" in str(error.value)


# --- Slots from cronsim ---------------------------------------------------------------------


def minute_by_minute(spec, start, end):
    """Every UTC minute in (start, end] that periodiq's own field check accepts: a reference
    for the specs whose meaning periodiq and standard cron agree on (no clock changes in UTC)."""
    from periodiq import CronSpec

    cron = CronSpec.parse(validate_cron(spec))
    moment = start.replace(second=0, microsecond=0)
    found = []
    while moment <= end:
        if moment > start and cron.validate(moment.replace(tzinfo=None)):
            found.append(moment)
        moment += timedelta(minutes=1)
    return found


@pytest.mark.parametrize(
    "spec",
    [
        "* * * * *",
        "*/5 * * * *",
        "0 */6 * * *",
        "15 1,2,3 * * *",
        "0 0 * * 7",
        "*/15 0-6 1,15 * 1-5",  # day of month OR day of week, both restricted
    ],
)
@pytest.mark.parametrize(
    "start", [datetime(2026, 3, 28, 22, 7, 30, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC)]
)
def test_slots_in_utc_are_the_minutes_the_spec_matches(spec, start):
    end = start + timedelta(days=2, hours=3)
    expected = minute_by_minute(spec, start, end)

    assert list(slots_between(spec, start, end)) == expected
    assert next_slots(spec, start, 3)[: len(expected)] == expected[:3]


def test_a_fixed_time_fires_once_when_its_hour_repeats_and_once_when_it_is_skipped():
    def day_of(spec, start):
        return list(slots_between(spec, start, start + timedelta(days=1), "Europe/Paris"))

    autumn = day_of("30 2 * * *", datetime(2026, 10, 24, 12, tzinfo=UTC))
    spring = day_of("30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC))

    # the first 02:30 (CEST) in October; the end of the skipped hour (03:00 CEST) in March
    assert autumn == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]
    assert spring == [datetime(2026, 3, 29, 1, 0, tzinfo=UTC)]


def test_a_wildcard_hour_follows_the_clock_through_a_repeated_hour():
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    slots = list(slots_between("30 * * * *", start, start + timedelta(hours=4), "Europe/Paris"))
    assert [slot.strftime("%H:%M") for slot in slots] == ["23:30", "00:30", "01:30", "02:30"]


def test_next_slots_are_in_the_given_zone():
    slots = next_slots("0 0 * * *", datetime(2026, 11, 23, 12, tzinfo=UTC), 2, "Asia/Tokyo")
    assert slots == [
        datetime(2026, 11, 23, 15, tzinfo=UTC),
        datetime(2026, 11, 24, 15, tzinfo=UTC),
    ]


@pytest.mark.parametrize("spec", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6 *"])
def test_a_spec_that_can_never_fire_is_an_error(spec):
    with pytest.raises(CronError, match="never fires"):
        validate_cron(spec)


def test_next_slots_jump_from_firing_to_firing():
    after = datetime(2026, 11, 23, 9, 30, 15, tzinfo=UTC)
    assert next_slots("* * * * *", after, 3) == [
        datetime(2026, 11, 23, 9, minute, tzinfo=UTC) for minute in (31, 32, 33)
    ]
    assert next_slots("0 0 1 1 *", after, 2) == [
        datetime(2027, 1, 1, tzinfo=UTC),
        datetime(2028, 1, 1, tzinfo=UTC),
    ]


def test_every_moment_of_a_minute_has_the_same_next_slots():
    minute = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    expected = [
        datetime(2026, 11, 23, 9, 31, tzinfo=UTC),
        datetime(2026, 11, 23, 9, 32, tzinfo=UTC),
    ]

    for second in (0, 1, 30, 59.999):
        assert next_slots("* * * * *", minute + timedelta(seconds=second), 2) == expected
