"""Allowed status changes, enforced where the change is written.

Every model with a status declares one `Transitions` map; its services move rows only through
`Transitions.update` (a conditional UPDATE: `... WHERE status IN (source)`), or call
`Transitions.check` before a hand-written statement that does the same. A change the map does
not allow is a programming error and raises before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class TransitionNotAllowed(ValueError):
    pass


class Transitions:
    def __init__(self, allowed: Mapping[str, Iterable[str]], *, field: str = "status") -> None:
        self.allowed = {source: frozenset(targets) for source, targets in allowed.items()}
        self.field = field

    def check(self, *, source: Iterable[str], target: str) -> None:
        for status in source:
            if target not in self.allowed.get(status, ()):
                raise TransitionNotAllowed(f"{self.field} may not go from {status} to {target}")

    def update(self, queryset, *, source: Iterable[str], target: str, **fields) -> int:
        """Move the rows of `queryset` that are in one of `source` to `target`; the number moved.

        Rows that left `source` meanwhile (another worker got there first) are not touched.
        """
        source = set(source)
        self.check(source=source, target=target)
        return queryset.filter(**{f"{self.field}__in": source}).update(
            **{self.field: target}, **fields
        )
