"""The audit trail of control actions: every pause, resume, cancel, clear, requeue, delete,
concurrency and rate change, drain, written in the same transaction as the change it records.
Schedule changes have their own trail, `ScheduleChange`."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from django.db.models import QuerySet

from jobs.exceptions import InvalidInput
from jobs.models import ControlAction

logger = logging.getLogger("steward.audit")

AUDIT_LIMIT_MAX = 500
REASON_MAX_LENGTH = 500


def audited_reason(reason: str) -> str:
    """The reason a control action gives, refused when too long for a person to read."""
    if len(reason) > REASON_MAX_LENGTH:
        raise InvalidInput({"reason": [f"At most {REASON_MAX_LENGTH} characters."]})
    return reason


def control_action_record(
    *,
    action: str,
    target_type: str,
    target: str,
    actor: str,
    reason: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> ControlAction:
    entry = ControlAction.objects.create(
        action=action,
        target_type=target_type,
        target=str(target),
        actor=actor,
        reason=reason,
        before=before,
        after=after,
    )
    logger.warning(
        "%s: %s %s by %s%s",
        entry.get_action_display(),
        target_type,
        target,
        actor or "an operator",
        f": {reason}" if reason else "",
    )
    return entry


def control_actions(
    *,
    action: str | None = None,
    target_type: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
) -> QuerySet[ControlAction]:
    """The audit, newest first, filtered by whatever is given."""
    entries = ControlAction.objects.all()
    if action:
        entries = entries.filter(action=action)
    if target_type:
        entries = entries.filter(target_type=target_type)
    if target:
        entries = entries.filter(target=target)
    if actor:
        entries = entries.filter(actor=actor)
    if since is not None:
        entries = entries.filter(at__gte=since)
    return entries.order_by("-id")


def change_text(before: dict | None, after: dict | None) -> str:
    """What a change did, in one line: each value before and after (`paused: false → true`),
    or the value it only had on one side."""
    before, after = before or {}, after or {}
    return "; ".join(
        f"{field}: {json.dumps(before.get(field))} → {json.dumps(after.get(field))}"
        if field in before and field in after
        else f"{field}: {json.dumps(before.get(field, after.get(field)))}"
        for field in sorted(set(before) | set(after))
    )
