import time
from datetime import UTC, datetime, timedelta

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


# --- Slots from cronsim, as periodiq fires them ------------------------------------------------


def periodiq_slots(spec, start, end, zone):
    """What periodiq fires: every minute whose wall clock in `zone` its own check accepts."""
    from zoneinfo import ZoneInfo

    from periodiq import CronSpec

    cron = CronSpec.parse(validate_cron(spec))
    moment = start.replace(second=0, microsecond=0)
    found = []
    while moment <= end:
        wall = moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        if moment > start and cron.validate(wall):
            found.append(moment)
        moment += timedelta(minutes=1)
    return found


@pytest.mark.parametrize("zone", ["UTC", "Africa/Lagos", "Europe/Paris", "America/New_York"])
@pytest.mark.parametrize(
    "spec",
    [
        "* * * * *",
        "*/5 * * * *",
        "0 */6 * * *",
        "30 2 * * *",  # inside the hour Paris skips in March and repeats in October
        "15 1,2,3 * * *",
        "0 0 * * 7",
        "*/15 0-6 1,15 * 1-5",  # day of month OR day of week, both restricted
        "5/10 * * * *",  # periodiq: minute 5 only, not 5, 15, 25, ...
        "0 0 * * */2",  # periodiq: 0, 2, 4, 6 by ISO numbers, so never Sunday
        "0 0 1 * 1-7",  # every weekday is no restriction: the 1st only
    ],
)
@pytest.mark.parametrize(
    "start",
    [
        datetime(2026, 3, 28, 22, 7, 30, tzinfo=UTC),  # Paris springs forward on the 29th
        datetime(2026, 10, 24, 23, 59, tzinfo=UTC),  # Paris falls back on the 25th
        datetime(2026, 10, 31, 23, 0, tzinfo=UTC),  # New York falls back on November 1st
    ],
)
def test_slots_are_the_minutes_periodiq_fires_at(settings, zone, spec, start):
    settings.TIME_ZONE = zone
    end = start + timedelta(days=2, hours=3)
    expected = periodiq_slots(spec, start, end, zone)

    assert list(slots_between(spec, start, end)) == expected
    assert next_slots(spec, start, 3)[: len(expected)] == expected[:3]


def test_an_hour_the_clock_repeats_has_its_slots_twice_and_a_skipped_one_none(settings):
    settings.TIME_ZONE = "Europe/Paris"
    autumn = list(
        slots_between(
            "30 2 * * *",
            datetime(2026, 10, 24, 12, tzinfo=UTC),
            datetime(2026, 10, 25, 12, tzinfo=UTC),
        )
    )
    spring = list(
        slots_between(
            "30 2 * * *",
            datetime(2026, 3, 28, 12, tzinfo=UTC),
            datetime(2026, 3, 29, 12, tzinfo=UTC),
        )
    )

    assert autumn == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    ]
    assert spring == []


def test_a_spec_that_can_never_fire_has_no_slots():
    assert next_slots("0 0 31 2 *", datetime(2026, 11, 23, tzinfo=UTC), 3) == []
    assert next_slots("0 0 30 2 *", datetime(2026, 11, 23, tzinfo=UTC), 3) == []


def test_next_slots_jump_from_firing_to_firing():
    # The old search listed every minute of a day to find three: ~110 ms for "* * * * *".
    after = datetime(2026, 11, 23, 9, 30, 15, tzinfo=UTC)
    started = time.perf_counter()
    for minute in range(200):  # a new minute each time: answers are kept per minute
        next_slots("* * * * *", after + timedelta(minutes=minute), 3)
    elapsed = time.perf_counter() - started

    assert next_slots("* * * * *", after, 3) == [
        datetime(2026, 11, 23, 9, minute, tzinfo=UTC) for minute in (31, 32, 33)
    ]
    assert elapsed < 2.0  # 200 calls; about 10 ms in all on a developer's machine


def test_every_moment_of_a_minute_has_the_same_next_slots():
    minute = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    expected = [
        datetime(2026, 11, 23, 9, 31, tzinfo=UTC),
        datetime(2026, 11, 23, 9, 32, tzinfo=UTC),
    ]

    for second in (0, 1, 30, 59.999):
        assert next_slots("* * * * *", minute + timedelta(seconds=second), 2) == expected
