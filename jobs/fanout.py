"""Fan-out: a large backlog handed to shard runs that any worker can take, and the fanned-out
run ended once its last shard has ended (and its follow-ups requested)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jobs.alerts import alert_run_failed
from jobs.follow_ups import follow_ups_request
from jobs.models import FINISHED_STATUSES, JobRun, RunStatus, cancel_text, run_move
from jobs.runlog import log_run_finish, run_log_append

SAMPLE_LIMIT = 10


@dataclasses.dataclass(frozen=True)
class FanOut:
    """What a job body returns to hand its work to shard runs instead of doing it."""

    shards: list[dict]
    summary: dict


def merge_summaries(summaries: Iterable[dict]) -> dict:
    """Add up the shards' summaries: numbers are summed, per-key counts merged, samples
    concatenated (capped); anything else is left out."""
    merged: dict = {}
    for summary in summaries:
        for key, value in summary.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                merged[key] = merged.get(key, 0) + value
            elif isinstance(value, list):
                merged[key] = (merged.get(key, []) + value)[:SAMPLE_LIMIT]
            elif isinstance(value, dict):
                counts = merged.setdefault(key, {})
                for name, count in value.items():
                    if isinstance(count, int | float) and not isinstance(count, bool):
                        counts[name] = counts.get(name, 0) + count
    return merged


def fan_out_unfinished(waiting: list[JobRun], *, time_limit_ms: int) -> JobRun | None:
    """The first of a job's runs waiting for their shards, unless its shards outlived the time
    limit (their messages were lost), in which case that run is closed as failed."""
    for run in waiting:
        if timezone.now() < run.started_at + timedelta(milliseconds=time_limit_ms):
            return run
        fan_out_finish(run.pk, lost_shards=True)
    return None


def fan_out_finish(parent_id: int, *, lost_shards: bool = False) -> None:
    """End a waiting run once every shard has ended: its summary adds theirs up, and it fails
    if a shard failed after its retries (or, with `lost_shards`, if some never ended)."""
    with transaction.atomic():
        parent = (
            JobRun.objects.select_for_update()
            .filter(pk=parent_id, status=RunStatus.WAITING)
            .first()
        )
        if parent is None:
            return
        shards = list(parent.shards.values_list("status", "summary"))
        unfinished = sum(status not in FINISHED_STATUSES for status, _ in shards)
        if unfinished and not lost_shards:
            return
        failed = sum(status in (RunStatus.FAILED, RunStatus.LOST) for status, _ in shards)
        failed += unfinished
        partial = sum(status in (RunStatus.PARTIAL, RunStatus.SKIPPED) for status, _ in shards)
        cancelled = sum(status == RunStatus.CANCELLED for status, _ in shards)
        if parent.cancel_requested_at is not None:
            target = RunStatus.CANCELLED
        elif failed:
            target = RunStatus.FAILED
        else:
            target = RunStatus.PARTIAL if partial or cancelled else RunStatus.SUCCEEDED
        now = timezone.now()
        problems = []
        if parent.cancel_requested_at is not None:
            problems.append(cancel_text(parent.cancel_requested_by, parent.cancel_reason))
        if failed:
            problems.append(f"{failed} of {len(shards)} shards failed")
        if unfinished:
            problems.append(f"{unfinished} shards never ended within the job's time limit")
        if partial:
            problems.append(f"{partial} shards partial or skipped")
        if cancelled:
            problems.append(f"{cancelled} shards cancelled")
        run_move(
            parent.pk,
            source={RunStatus.WAITING},
            target=target,
            summary={
                **parent.summary,
                **merge_summaries(summary for status, summary in shards if summary),
                "shards": len(shards),
                "shards_failed": failed,
            },
            error="; ".join(problems) if failed else "",
            status_reason="; ".join(problems),
            finished_at=now,
            duration_ms=int((now - parent.started_at).total_seconds() * 1000),
        )
    parent.refresh_from_db()
    log_run_finish(parent)
    follow_ups_request(run=parent)
    run_log_append(parent.pk, parent.attempt_count)
    if target not in (RunStatus.SUCCEEDED, RunStatus.CANCELLED):
        alert_run_failed(parent)
