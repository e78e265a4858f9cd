"""/metrics tells run counts and overdue escrows with their amounts: with DEBUG off it needs
the bearer token, or METRICS_PUBLIC to say it is meant to be open."""

import pytest

pytestmark = pytest.mark.django_db


def test_with_debug_off_and_no_token_metrics_are_closed(client, settings):
    settings.DEBUG = False

    response = client.get("/metrics")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"METRICS_TOKEN" in response.content
    assert b"steward_" not in response.content


@pytest.mark.parametrize("opened_by", ["DEBUG", "STEWARD_METRICS_PUBLIC"])
def test_debug_or_metrics_public_opens_them(client, settings, opened_by):
    settings.DEBUG = False
    setattr(settings, opened_by, True)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert b"steward_job_runs_total" in response.content


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        ("Bearer s3cret", 200),
        ("bearer s3cret", 200),
        ("s3cret", 401),
        ("Token s3cret", 401),
        ("Bearer wrong", 401),
        ("Bearer", 401),
        ("", 401),
    ],
)
def test_a_token_is_taken_only_as_a_bearer_token(client, settings, authorization, status):
    # even where the metrics would otherwise be open
    settings.STEWARD_METRICS_TOKEN = "s3cret"
    settings.STEWARD_METRICS_PUBLIC = True

    response = client.get("/metrics", HTTP_AUTHORIZATION=authorization)

    assert response.status_code == status
