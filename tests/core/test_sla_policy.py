"""SLA policy: 24/7 and business-hours clocks (nights, weekends, holidays, DST changes)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import sla
from core.context import Core
from core.enums import Priority, Role, SlaThreshold
from core.settings import CoreSettings
from core.sla_policy import SlaPolicy
from tests.factories import make_ticket, make_user

BERLIN = ZoneInfo("Europe/Berlin")


def policy(**overrides: object) -> SlaPolicy:
    values: dict[str, object] = {"business_hours_enabled": True}
    values.update(overrides)
    return SlaPolicy(CoreSettings(_env_file=None, **values))  # type: ignore[call-arg]


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# 24/7


def test_without_business_hours_the_clock_runs_around_the_clock():
    rules = policy(business_hours_enabled=False, business_timezone="Europe/Berlin")
    friday_night = datetime(2026, 1, 9, 22, 0, tzinfo=UTC)
    assert rules.add_working_time(friday_night, timedelta(hours=8)) == datetime(
        2026, 1, 10, 6, 0, tzinfo=UTC
    )
    assert rules.working_time_between(friday_night, friday_night + timedelta(days=2)) == (
        timedelta(days=2)
    )


def test_default_deadlines_are_the_warning_ratio_and_the_target():
    rules = policy(business_hours_enabled=False)
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert rules.deadlines(Priority.HIGH, start) == (
        start + timedelta(minutes=90),
        start + timedelta(hours=2),
    )


# --------------------------------------------------------------------------------------------
# business hours (Mon-Fri 09:00-17:00 by default)


def test_business_clock_skips_the_night():
    rules = policy(business_timezone="Europe/Berlin")
    monday_4pm = berlin(2026, 1, 12, 16, 0)
    assert rules.add_working_time(monday_4pm, timedelta(hours=2)) == berlin(2026, 1, 13, 10, 0)


def test_business_clock_waits_for_the_opening_when_started_outside_hours():
    rules = policy(business_timezone="Europe/Berlin")
    tuesday_3am = berlin(2026, 1, 13, 3, 0)
    assert rules.add_working_time(tuesday_3am, timedelta(minutes=30)) == berlin(2026, 1, 13, 9, 30)
    assert rules.working_time_between(tuesday_3am, berlin(2026, 1, 13, 10, 0)) == timedelta(hours=1)


def test_business_clock_skips_the_weekend():
    rules = policy(business_timezone="Europe/Berlin")
    friday_4pm = berlin(2026, 1, 16, 16, 0)
    assert rules.add_working_time(friday_4pm, timedelta(hours=2)) == berlin(2026, 1, 19, 10, 0)
    assert rules.working_time_between(friday_4pm, berlin(2026, 1, 19, 10, 0)) == timedelta(hours=2)


def test_business_clock_skips_holidays():
    rules = policy(business_timezone="Europe/Berlin", business_holidays="2026-01-19,2026-01-20")
    friday_4pm = berlin(2026, 1, 16, 16, 0)
    assert rules.add_working_time(friday_4pm, timedelta(hours=2)) == berlin(2026, 1, 21, 10, 0)


def test_holidays_are_dates_in_the_business_timezone():
    # 23:30 UTC on 18 January is already 19 January in Tokyo: a holiday there.
    rules = policy(business_timezone="Asia/Tokyo", business_holidays="2026-01-19")
    assert not rules.is_business_day(date(2026, 1, 19))
    late_sunday_utc = datetime(2026, 1, 18, 23, 30, tzinfo=UTC)
    assert rules.add_working_time(late_sunday_utc, timedelta(hours=1)) == datetime(
        2026, 1, 20, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo")
    ) + timedelta(hours=1)


def test_custom_weekdays_and_hours():
    rules = policy(
        business_timezone="UTC",
        business_days="sun,mon",
        business_open=time(8, 0),
        business_close=time(12, 0),
    )
    saturday = datetime(2026, 1, 17, 10, 0, tzinfo=UTC)
    assert rules.add_working_time(saturday, timedelta(hours=6)) == datetime(
        2026, 1, 19, 10, 0, tzinfo=UTC
    )


def test_business_clock_crosses_the_spring_dst_change():
    # Friday 27 March 2026 is CET (UTC+1); Monday 30 March is CEST (UTC+2).
    rules = policy(business_timezone="Europe/Berlin")
    friday_4pm = berlin(2026, 3, 27, 16, 0)
    deadline = rules.add_working_time(friday_4pm, timedelta(hours=8))
    assert deadline == berlin(2026, 3, 30, 16, 0)
    assert deadline == datetime(2026, 3, 30, 14, 0, tzinfo=UTC)  # not 15:00 (fixed offset)


def test_business_clock_crosses_the_autumn_dst_change():
    # Friday 23 October 2026 is CEST (UTC+2); Monday 26 October is CET (UTC+1).
    rules = policy(business_timezone="Europe/Berlin")
    deadline = rules.add_working_time(berlin(2026, 10, 23, 16, 0), timedelta(hours=8))
    assert deadline == datetime(2026, 10, 26, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 29), 3), (date(2026, 10, 25), 5), (date(2026, 3, 22), 4)],
)
def test_a_business_day_containing_a_dst_change_lasts_the_real_time(day, hours):
    # Open 01:00-05:00 every day: the clocks jump 02:00 -> 03:00 in March, 03:00 -> 02:00 in
    # October, so those nights hold 3 and 5 real hours.
    rules = policy(
        business_timezone="Europe/Berlin",
        business_days="mon,tue,wed,thu,fri,sat,sun",
        business_open=time(1, 0),
        business_close=time(5, 0),
    )
    opens = datetime.combine(day, time(1), tzinfo=BERLIN)
    closes = datetime.combine(day, time(5), tzinfo=BERLIN)
    assert rules.working_time_between(opens, closes) == timedelta(hours=hours)
    assert rules.add_working_time(opens, timedelta(hours=hours)) == closes
    next_day = datetime.combine(day + timedelta(days=1), time(1), tzinfo=BERLIN)
    assert rules.add_working_time(opens, timedelta(hours=hours, minutes=1)) == (
        next_day + timedelta(minutes=1)
    )


def test_business_time_checks():
    rules = policy(business_timezone="Europe/Berlin")
    assert rules.is_business_time(berlin(2026, 1, 12, 9, 0))
    assert not rules.is_business_time(berlin(2026, 1, 12, 17, 0))
    assert not rules.is_business_time(berlin(2026, 1, 17, 12, 0))  # Saturday
    assert policy(business_hours_enabled=False).is_business_time(berlin(2026, 1, 17, 3, 0))


def test_settings_refuse_business_hours_that_close_before_they_open():
    with pytest.raises(ValueError, match="later than business_open"):
        policy(business_open=time(17, 0), business_close=time(9, 0))


def test_settings_refuse_an_unknown_business_timezone():
    with pytest.raises(ValueError, match="unknown timezone"):
        policy(business_timezone="Mars/Olympus_Mons")


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        policy().add_working_time(datetime(2026, 1, 5, 9), timedelta(hours=1))


@settings(max_examples=150, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 4),
)
def test_working_time_between_inverts_add_working_time(start, minutes):
    rules = policy(
        business_timezone="Europe/Berlin",
        business_holidays="2026-03-30,2026-12-25",
        business_open=time(8, 30),
        business_close=time(18, 0),
    )
    duration = timedelta(minutes=minutes)
    end = rules.add_working_time(start, duration)
    assert end >= start
    assert rules.working_time_between(start, end) == duration
    if minutes:
        assert rules.is_business_time(end - timedelta(microseconds=1))


# --------------------------------------------------------------------------------------------
# through the services and the scan


async def fired(core: Core) -> tuple[sla.ClaimedAlert, ...]:
    """Scan; the alerts the scan claimed."""
    return await sla.scan_alerts(core, (await sla.scan(core)).scan_id)


async def test_ticket_deadlines_and_alerts_follow_business_hours(core, clock, database_url):
    hours = Core(
        db=core.db,
        settings=CoreSettings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=database_url,
            ticket_create_limit=10_000,
            business_hours_enabled=True,
            business_timezone="Europe/Berlin",
            business_holidays="2026-03-30",
        ),
        clock=clock,
    )
    clock.set(berlin(2026, 3, 27, 16, 0))  # Friday, CET; high = 2 h target, warning 90 min
    customer = await make_user(hours, Role.CUSTOMER)
    ticket = await make_ticket(hours, customer, priority=Priority.HIGH)
    # One hour runs on Friday; Saturday, Sunday and Monday (a holiday) are skipped; the clocks
    # moved to CEST meanwhile; Tuesday opens at 09:00 CEST.
    assert ticket.sla_warning_at == berlin(2026, 3, 31, 9, 30)
    assert ticket.sla_breach_at == berlin(2026, 3, 31, 10, 0)

    clock.set(berlin(2026, 3, 30, 23, 0))  # three calendar days later: nothing due yet
    assert (await sla.scan(hours)).fired == 0
    clock.set(berlin(2026, 3, 31, 9, 29))
    assert (await sla.scan(hours)).fired == 0
    clock.set(berlin(2026, 3, 31, 9, 30))
    assert [a.threshold for a in await fired(hours)] == [SlaThreshold.WARNING]
    clock.set(berlin(2026, 3, 31, 10, 0))
    assert [a.threshold for a in await fired(hours)] == [SlaThreshold.BREACH]
