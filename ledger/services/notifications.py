"""The notification outbox: rows written with the state change, delivered by their own job."""

import dataclasses
from collections.abc import Sequence

from ledger.models import Notification


@dataclasses.dataclass(frozen=True)
class NotificationDraft:
    user_id: int
    channel: str
    kind: str
    dedupe_key: str
    payload: dict


def notifications_queue(*, drafts: Sequence[NotificationDraft]) -> int:
    """Write outbox rows; a dedupe key already present is left as it is."""
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
