"""The notification outbox: rows written with the state change, delivered by their own job."""

import dataclasses
import json
from collections.abc import Sequence

from django.db import connection
from django.utils import timezone

from ledger.models import Notification
from ledger.statuses import NotificationStatus


@dataclasses.dataclass(frozen=True)
class NotificationDraft:
    user_id: int
    channel: str
    kind: str
    dedupe_key: str
    payload: dict


# One statement per call whatever the number of drafts: the drafts travel as one JSON array,
# which costs far less to encode and bind than a parameter (or an array element) per value.
# The columns it names carry Notification's defaults; the others are nullable. ON CONFLICT
# DO NOTHING is what bulk_create(ignore_conflicts=True) does elsewhere.
_QUEUE_POSTGRES = """
INSERT INTO ledger_notification
    (user_id, channel, kind, payload, dedupe_key, status, attempts, last_error, created_at)
SELECT draft.user_id, draft.channel, draft.kind, draft.payload, draft.dedupe_key,
       %s, 0, '', %s
FROM jsonb_to_recordset(%s::jsonb)
    AS draft(user_id integer, channel text, kind text, payload jsonb, dedupe_key text)
ON CONFLICT DO NOTHING
"""


def notifications_queue(*, drafts: Sequence[NotificationDraft]) -> int:
    """Write outbox rows; a dedupe key already present is left as it is."""
    if not drafts:
        return 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _QUEUE_POSTGRES,
                [
                    NotificationStatus.PENDING.value,
                    timezone.now(),
                    json.dumps(
                        [
                            {
                                "user_id": draft.user_id,
                                "channel": draft.channel,
                                "kind": draft.kind,
                                "payload": draft.payload,
                                "dedupe_key": draft.dedupe_key,
                            }
                            for draft in drafts
                        ]
                    ),
                ],
            )
        return len(drafts)
    Notification.objects.bulk_create(
        [
            Notification(
                user_id=draft.user_id,
                channel=draft.channel,
                kind=draft.kind,
                dedupe_key=draft.dedupe_key,
                payload=draft.payload,
            )
            for draft in drafts
        ],
        ignore_conflicts=True,
        batch_size=2_000,
    )
    return len(drafts)
