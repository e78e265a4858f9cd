"""Which runs changed a domain row: each domain app registers, per kind of row it lets jobs
change (an escrow, a wallet), how to find the runs that row names, so the engine can filter
run history by it without importing the app."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from jobs.exceptions import NotFoundError


class UnknownEntity(NotFoundError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown entity {name!r}; known: {', '.join(known) or 'none'}")
        self.name = name


@dataclasses.dataclass(frozen=True)
class EntityRuns:
    name: str
    # How a person calls one, e.g. "escrow".
    label: str
    runs_of: Callable[[int], Iterable[int]]


_entities: dict[str, EntityRuns] = {}


def register_entity_runs(
    entity: str, runs_of: Callable[[int], Iterable[int]], *, label: str
) -> None:
    """`runs_of(pk)` gives the ids of the runs that changed row `pk` of `entity`. Registering a
    name again replaces its lookup (apps' ready() may run twice in tests)."""
    _entities[entity] = EntityRuns(name=entity, label=label, runs_of=runs_of)


def entity_names() -> list[str]:
    return sorted(_entities)


def entity_label(entity: str) -> str:
    return _entity(entity).label


def entity_run_ids(entity: str, pk: int) -> set[int]:
    """The ids of the runs that changed row `pk` of `entity`; UnknownEntity for a name no app
    registered."""
    return set(_entity(entity).runs_of(pk))


def _entity(entity: str) -> EntityRuns:
    try:
        return _entities[entity]
    except KeyError:
        raise UnknownEntity(entity, entity_names()) from None
