"""Channel backends for tests: they record or fail the way a provider would."""

import threading
from collections import Counter

sent_keys: Counter = Counter()
_lock = threading.Lock()


class RecordingChannel:
    def send(self, notification) -> None:
        with _lock:
            sent_keys[notification.dedupe_key] += 1


class FailingChannel:
    def send(self, notification) -> None:
        raise ConnectionError("provider unavailable")
