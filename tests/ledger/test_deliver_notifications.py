import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from ledger.channels import channel_backend
from ledger.models import Channel, Notification
from ledger.services.delivery import notifications_deliver_due
from ledger.services.notifications import NotificationDraft, notifications_queue
from ledger.statuses import NotificationStatus
from tests.factories import UserFactory
from tests.ledger import channels
from tests.ledger.helpers import run_job


@pytest.fixture
def backends(settings, broker):
    """Push and SMS through a recording backend, email through Django's locmem backend, and
    fresh rate-limit windows."""
    broker.client.flushdb()
    settings.STEWARD_CHANNEL_BACKENDS = {
        "push": "tests.ledger.channels.RecordingChannel",
        "sms": "tests.ledger.channels.RecordingChannel",
        "email": "ledger.channels.EmailChannel",
    }
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    channels.sent_keys.clear()
    channel_backend.cache_clear()
    yield settings
    channel_backend.cache_clear()


def queue(count: int, channel: str = Channel.PUSH, prefix: str = "n") -> list[str]:
    users = [UserFactory() for _ in range(min(count, 20))]
    keys = [f"{prefix}:{i}" for i in range(count)]
    notifications_queue(
        drafts=[
            NotificationDraft(users[i % len(users)].pk, channel, "test_kind", key, {"i": i})
            for i, key in enumerate(keys)
        ]
    )
    return keys


@pytest.mark.django_db
def test_pending_notifications_are_sent_once_through_their_channel(backends):
    # given push, SMS and email notifications waiting in the outbox
    push = queue(3, Channel.PUSH, "push")
    sms = queue(2, Channel.SMS, "sms")
    queue(1, Channel.EMAIL, "email")

    # when the delivery job runs twice
    first = run_job("deliver_notifications", as_of=timezone.now())
    second = run_job("deliver_notifications", as_of=timezone.now())

    # then each was sent exactly once and recorded as sent
    assert first.summary["sent"] == 6
    assert first.summary["sent_by_channel"] == {"email": 1, "push": 3, "sms": 2}
    assert second.summary["sent"] == 0
    assert channels.sent_keys == {key: 1 for key in push + sms}
    assert len(mail.outbox) == 1
    assert mail.outbox[0].extra_headers["X-Steward-Dedupe-Key"] == "email:0"
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.SENT}
    assert not Notification.objects.filter(sent_at__isnull=True).exists()


@pytest.mark.django_db
def test_a_failing_channel_retries_with_backoff_then_fails(backends):
    # given a push provider that is down, three attempts allowed, 30 s first backoff
    backends.STEWARD_CHANNEL_BACKENDS = {
        **backends.STEWARD_CHANNEL_BACKENDS,
        "push": "tests.ledger.channels.FailingChannel",
    }
    backends.NOTIFICATION_MAX_ATTEMPTS = 3
    backends.NOTIFICATION_BACKOFF_SECONDS = 30
    channel_backend.cache_clear()
    (key,) = queue(1)
    now = timezone.now()

    # when delivery runs: the first attempt fails and waits out its backoff
    first = run_job("deliver_notifications", as_of=now)
    notification = Notification.objects.get(dedupe_key=key)
    assert first.summary["retry_scheduled"] == 1
    assert notification.status == NotificationStatus.PENDING
    assert notification.attempts == 1
    assert "provider unavailable" in notification.last_error
    assert timedelta(seconds=29) < notification.next_attempt_at - now < timedelta(seconds=40)
    assert (
        run_job("deliver_notifications", as_of=now + timedelta(seconds=5)).summary[
            "retry_scheduled"
        ]
        == 0
    )

    # then the second waits twice as long, and the third attempt fails it for good
    run_job("deliver_notifications", as_of=now + timedelta(minutes=1))
    notification.refresh_from_db()
    assert notification.attempts == 2
    assert notification.next_attempt_at - timezone.now() > timedelta(seconds=55)
    last = run_job("deliver_notifications", as_of=now + timedelta(minutes=5))
    notification.refresh_from_db()
    assert last.summary["failed"] == 1
    assert notification.status == NotificationStatus.FAILED
    assert notification.attempts == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_never_send_a_dedupe_key_twice(backends):
    # given 600 pending push notifications and three workers delivering at once
    keys = queue(600)
    barrier = threading.Barrier(3)
    results = []

    def deliver():
        barrier.wait()
        try:
            results.append(notifications_deliver_due(as_of=timezone.now(), batch_size=25))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then every key was sent exactly once, split between the workers
    assert channels.sent_keys == {key: 1 for key in keys}
    assert sum(result["sent"] for result in results) == 600
    assert Notification.objects.filter(status=NotificationStatus.SENT).count() == 600


@pytest.mark.django_db
def test_a_send_lost_with_its_worker_is_failed_not_resent(backends):
    # given a notification claimed for sending an hour ago by a worker that died
    (key,) = queue(1)
    Notification.objects.filter(dedupe_key=key).update(
        status=NotificationStatus.SENDING,
        claimed_at=timezone.now() - timedelta(hours=1),
        attempts=1,
    )

    # when delivery runs
    run = run_job("deliver_notifications", as_of=timezone.now())

    # then it is failed with the reason and never handed to the backend again
    notification = Notification.objects.get(dedupe_key=key)
    assert run.summary["lost_sends_failed"] == 1
    assert notification.status == NotificationStatus.FAILED
    assert "outcome unknown" in notification.last_error
    assert channels.sent_keys == {}


@pytest.mark.django_db
def test_a_channel_at_its_rate_limit_waits_for_the_next_run(backends):
    # given a fleet-wide limit of 3 push sends per minute and 5 pending pushes and 2 SMS
    backends.STEWARD_QUEUE_RATE_LIMITS = "channel-push=3/60"
    push = queue(5, Channel.PUSH, "push")
    sms = queue(2, Channel.SMS, "sms")

    # when delivery runs
    run = run_job("deliver_notifications", as_of=timezone.now())

    # then 3 pushes and both SMS went out; 2 pushes wait, without spending an attempt
    assert run.summary["sent"] == 5
    assert run.summary["rate_limited_channels"] == ["push"]
    assert sum(channels.sent_keys[key] for key in push) == 3
    assert all(channels.sent_keys[key] == 1 for key in sms)
    waiting = Notification.objects.filter(status=NotificationStatus.PENDING)
    assert waiting.count() == 2
    assert set(waiting.values_list("attempts", flat=True)) == {0}


@pytest.mark.django_db
def test_dry_run_reports_what_is_due_and_sends_nothing(backends):
    queue(4, Channel.PUSH, "push")
    queue(1, Channel.SMS, "sms")
    run = run_job("deliver_notifications", as_of=timezone.now(), dry_run=True)
    assert run.summary["due"] == 5
    assert run.summary["due_by_channel"] == {"push": 4, "sms": 1}
    assert channels.sent_keys == {}
    assert Notification.objects.filter(status=NotificationStatus.PENDING).count() == 5
