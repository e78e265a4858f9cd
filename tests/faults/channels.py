"""A channel backend for the fault workers: it appends each send's dedupe key to a file shared
by every worker process, so the suite can count a notification delivered twice."""

import os

from ledger.models import Notification


class FileChannel:
    def send(self, notification: Notification) -> None:
        # One short O_APPEND write per send: lines from concurrent processes never interleave.
        fd = os.open(os.environ["FAULTS_SENT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{notification.dedupe_key}\n".encode())
        finally:
            os.close(fd)
