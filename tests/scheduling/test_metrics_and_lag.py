from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import RunStatus
from jobs.runner import job_run_execute
from jobs.services import job_run_request
from tests.factories import HOLD, donation_at
from tests.scheduling.helpers import registered_job


def scrape(client, **headers):
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def run_now(job, **fields):
    run = job_run_request(enqueue=False, job=job, trigger="cli", **fields)
    try:
        return job_run_execute(run_id=run.pk)
    except RuntimeError:
        run.refresh_from_db()
        return run


def failing_body(context):
    raise RuntimeError("downstream unavailable")


@pytest.mark.django_db
def test_metrics_expose_runs_durations_last_success_and_business_lag(client, settings):
    # given metrics open to the scrape (closed by default with DEBUG off), two succeeded runs
    # and one failed run, and two escrows overdue by about an hour
    settings.STEWARD_METRICS_PUBLIC = True
    now = timezone.now()
    for _ in range(2):
        assert run_now("expire_matches").status == RunStatus.SUCCEEDED
    with registered_job("always_fails", body=failing_body):
        assert run_now("always_fails").status == RunStatus.FAILED
    donation_at(at=now - HOLD - timedelta(hours=1), amount=7_000)
    donation_at(at=now - HOLD - timedelta(minutes=10), amount=3_000)

    # when Prometheus scrapes the web app
    samples = scrape(client)

    # then each series has the value the runs imply
    assert (
        samples[("steward_job_runs_total", (("job", "expire_matches"), ("status", "succeeded")))]
        == 2
    )
    assert samples[("steward_job_runs_total", (("job", "always_fails"), ("status", "failed")))] == 1
    assert samples[("steward_job_run_duration_seconds_count", (("job", "expire_matches"),))] == 2
    assert (
        samples[
            ("steward_job_run_duration_seconds_bucket", (("job", "expire_matches"), ("le", "+Inf")))
        ]
        == 2
    )
    last_success = samples[
        ("steward_job_last_success_timestamp_seconds", (("job", "expire_matches"),))
    ]
    assert abs(last_success - timezone.now().timestamp()) < 60
    assert ("steward_job_last_success_timestamp_seconds", (("job", "always_fails"),)) not in samples
    assert samples[("steward_escrows_overdue", ())] == 2
    assert samples[("steward_escrows_overdue_amount_kobo", ())] == 10_000
    assert 3_590 < samples[("steward_escrows_overdue_oldest_age_seconds", ())] < 3_700


@pytest.mark.django_db
def test_metrics_token_is_required_when_configured(client, settings):
    settings.STEWARD_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    scrape(client, HTTP_AUTHORIZATION="Bearer s3cret")


@pytest.mark.django_db
def test_business_lag_alerts_once_past_the_threshold(settings, caplog):
    # given alerts by mail and one escrow overdue for three hours (threshold two)
    settings.ADMINS = [("ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ESCROW_LAG_ALERT_MINUTES = 120
    donation_at(at=timezone.now() - HOLD - timedelta(hours=3))

    # when the monitor runs twice
    first = run_now("monitor_business_lag")
    second = run_now("monitor_business_lag")

    # then the first run alerts (mail and ERROR line) and the second does not repeat it
    assert first.summary["lagging"] is True
    assert first.summary["alerted"] is True
    assert second.summary["alerted"] is False
    assert len(mail.outbox) == 1
    assert "escrows overdue for release" in mail.outbox[0].subject
    assert any(
        record.levelname == "ERROR" and "ALERT" in record.message for record in caplog.records
    )


@pytest.mark.django_db
def test_business_lag_under_the_threshold_does_not_alert(settings):
    settings.ADMINS = [("ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    donation_at(at=timezone.now() - HOLD - timedelta(minutes=30))
    run = run_now("monitor_business_lag")
    assert run.summary["overdue_count"] == 1
    assert run.summary["alerted"] is False
    assert mail.outbox == []
