"""Notification channel backends: how an outbox row reaches a person.

A backend raises on failure; the delivery job retries with backoff. Email goes through
Django's email backend; push and SMS default to a logging backend until a provider is wired in
through `STEWARD_CHANNEL_BACKENDS`.
"""

from __future__ import annotations

import functools
import logging
from typing import Protocol

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils.module_loading import import_string

from ledger.models import Notification

logger = logging.getLogger("steward.notifications")


class ChannelBackend(Protocol):
    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise to have it retried."""


class LoggingChannel:
    """Writes the notification to the log: the default for push and SMS."""

    def send(self, notification: Notification) -> None:
        logger.info(
            "%s to user %s: %s %s",
            notification.channel,
            notification.user_id,
            notification.kind,
            notification.payload,
        )


class EmailChannel:
    """Sends through Django's email backend (SMTP when configured)."""

    def send(self, notification: Notification) -> None:
        address = notification.user.email
        if not address:
            raise ValueError(f"user {notification.user_id} has no email address")
        message = EmailMessage(
            subject=notification.payload.get("subject")
            or notification.kind.replace("_", " ").capitalize(),
            body=notification.payload.get("body") or _describe(notification.payload),
            to=[address],
            # Lets a receiving system drop a copy the same key already delivered.
            headers={"X-Steward-Dedupe-Key": notification.dedupe_key},
        )
        message.send(fail_silently=False)


def _describe(payload: dict) -> str:
    return "\n".join(f"{key}: {value}" for key, value in sorted(payload.items()))


@functools.cache
def channel_backend(channel: str) -> ChannelBackend:
    try:
        path = settings.STEWARD_CHANNEL_BACKENDS[channel]
    except KeyError:
        raise LookupError(f"no backend configured for channel {channel!r}") from None
    return import_string(path)()
