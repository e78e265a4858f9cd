"""The domain apps' trends (STEWARD_DASHBOARD_TRENDS) drawn on the dashboard's index page: a
chart a trend, money with the currency, the latest value and the note as text, "no data yet"
for an empty one and a short error line, never a 500, for one that fails."""

import logging
import re
from datetime import date, timedelta

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from jobs.dashboard.trends import domain_trend_chart
from jobs.panels import Trend, TrendPoint
from tests.api.helpers import user_with

pytestmark = pytest.mark.django_db

THIS_MODULE = "tests.dashboard.test_dashboard_domain_trends"
FIRST_DAY = date(2026, 3, 1)


def money_held(*, as_of) -> Trend:
    """Three days of money held, the middle one with nothing recorded."""
    return Trend(
        title="Money held",
        points=[
            TrendPoint(day=FIRST_DAY, value=1_250_000),
            TrendPoint(day=FIRST_DAY + timedelta(days=1), value=None),
            TrendPoint(day=FIRST_DAY + timedelta(days=2), value=1_030_750),
        ],
        money=True,
        note="Escrow, pools and wallets at the end of each day.",
    )


def players_active(*, as_of) -> Trend:
    return Trend(
        title="Players active",
        points=[
            TrendPoint(day=FIRST_DAY + timedelta(days=day), value=day * 10) for day in range(4)
        ],
    )


def nothing_yet(*, as_of) -> Trend:
    return Trend(
        title="Prizes paid",
        points=[TrendPoint(day=FIRST_DAY + timedelta(days=day), value=None) for day in range(3)],
        money=True,
        note="Filled in by the nightly snapshot.",
    )


def broken(*, as_of) -> Trend:
    raise RuntimeError("the snapshot table is missing")


def index_page() -> str:
    client = Client()
    client.force_login(user_with())
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    return response.content.decode()


def trend_panel(page: str, title: str) -> str:
    match = re.search(rf'<div class="trend" data-trend="{title}">(.*?)\n    </div>', page, re.S)
    assert match, f"no trend panel {title!r}"
    return match.group(1)


@override_settings(STEWARD_DASHBOARD_TRENDS=[f"{THIS_MODULE}.money_held"])
def test_a_money_trend_is_drawn_with_the_currency_its_latest_value_and_its_note():
    panel = trend_panel(index_page(), "Money held")

    # one bar per day with a value, each titled with its day and amount in the currency
    bars = re.findall(r'<rect class="trend-p50"[^>]*><title>([^<]*)</title>', panel)
    assert bars == ["2026-03-01: ₦12,500.00", "2026-03-03: ₦10,307.50"]
    assert "highest ₦12,500.00" in panel
    assert "Latest: <strong>₦10,307.50 on 2026-03-03</strong>" in panel
    assert "Escrow, pools and wallets at the end of each day." in panel
    assert "Mar 1" in panel and "Mar 3" in panel


@override_settings(
    STEWARD_DASHBOARD_TRENDS=[f"{THIS_MODULE}.players_active", f"{THIS_MODULE}.nothing_yet"]
)
def test_each_trend_gets_a_panel_and_an_empty_one_says_no_data_yet():
    page = index_page()

    counts = trend_panel(page, "Players active")
    # a zero draws no bar; the others are plain numbers, the tallest the full height
    bars = re.findall(r'height="([\d.]+)"><title>([^<]*)</title>', counts)
    assert [title for _, title in bars] == ["2026-03-02: 10", "2026-03-03: 20", "2026-03-04: 30"]
    assert float(bars[-1][0]) == 70.0
    assert "Latest: <strong>30 on 2026-03-04</strong>" in counts
    assert "₦" not in counts

    empty = trend_panel(page, "Prizes paid")
    assert "No data yet." in empty
    assert "<svg" not in empty
    assert "Filled in by the nightly snapshot." in empty


@override_settings(STEWARD_DASHBOARD_TRENDS=[f"{THIS_MODULE}.broken", f"{THIS_MODULE}.money_held"])
def test_a_trend_that_fails_shows_a_short_error_and_the_rest_of_the_page(caplog):
    with caplog.at_level(logging.ERROR, logger="steward.dashboard"):
        page = index_page()

    panel = trend_panel(page, "Broken")
    assert "Broken could not be drawn (RuntimeError); see the server log." in panel
    assert "the snapshot table is missing" not in page
    assert "Latest: <strong>₦10,307.50 on 2026-03-03</strong>" in trend_panel(page, "Money held")
    assert f"The dashboard trend {THIS_MODULE}.broken could not be drawn" in caplog.text
    assert "the snapshot table is missing" in caplog.text


@override_settings(STEWARD_DASHBOARD_TRENDS=["no_such_app.selectors.money_held_trend"])
def test_a_trend_naming_a_function_that_does_not_exist_is_an_error_line_not_a_500():
    panel = trend_panel(index_page(), "Money held trend")

    assert "could not be drawn (ModuleNotFoundError)" in panel


@override_settings(STEWARD_DASHBOARD_TRENDS=[])
def test_without_trends_the_section_is_left_out():
    assert 'id="domain-trends"' not in index_page()


def test_the_configured_trends_never_break_the_index_page():
    # The project's own setting (the ledger's money held, being written meanwhile): drawn, or
    # an error line, but the page answers.
    assert 'id="domain-trends"' in index_page()


def test_a_negative_value_is_drawn_by_its_size_and_shown_with_its_sign():
    chart = domain_trend_chart(
        Trend(
            title="Net flow",
            points=[TrendPoint(day=FIRST_DAY, value=-500), TrendPoint(day=FIRST_DAY, value=250)],
            money=True,
        )
    )

    assert chart.latest == "₦2.50 on 2026-03-01"
    assert chart.largest == "₦5.00"
    assert "-₦5.00" in chart.markup
