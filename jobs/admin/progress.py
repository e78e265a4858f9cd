"""A run's progress on its admin page: a bar with done of total, batches, rate and time left."""

from __future__ import annotations

from django.utils.html import format_html

from jobs.admin.tools import MUTED, when_text
from jobs.dashboard.live import progress_bar


def _per_second_text(per_second: float) -> str:
    return f"{per_second:,.0f}/s" if per_second >= 10 else f"{per_second:,.1f}/s"


def progress_text(progress: dict | None, *, running: bool):
    """A run's progress as a bar with its figures: done of total, batches, rate and, while it
    runs, the time left; a fanned-out run's also counts its shards."""
    bar = progress_bar(progress)
    if bar is None:
        return "—"
    what = f" {bar.what}" if bar.what else ""
    if bar.total is not None:
        counted = f"{bar.done:,} / {bar.total:,}{what}"
    else:
        counted = f"{bar.done:,}{what} (total not known yet)"
    if bar.percent is not None:
        counted += f" ({bar.percent}%)"
    facts = []
    if bar.shards_total:
        facts.append(f"shards {bar.shards_done:,} of {bar.shards_total:,} finished")
    if bar.batches is not None:
        facts.append(f"{bar.batches:,} batches")
    if bar.per_second:
        facts.append(_per_second_text(bar.per_second))
    if running and bar.seconds_left:
        facts.append(f"about {bar.seconds_left} left")
    if bar.at is not None:
        facts.append(f"saved {when_text(bar.at)}")
    colour = "#0969da" if running else "#6e7781"
    return format_html(
        "<div style='width:24em;max-width:100%;height:8px;background:#eaeef2;border-radius:4px'>"
        "<div style='width:{}%;height:8px;background:{};border-radius:4px'></div></div>"
        "<div style='font-variant-numeric:tabular-nums;margin-top:4px'>{}</div>" + MUTED,
        bar.percent or 0,
        colour,
        counted,
        " · ".join(facts),
    )
