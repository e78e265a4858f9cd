"""The run list's filter to the runs that changed one domain row (an escrow, a wallet, a pool):
the entities the domain apps register with `jobs.entities`."""

from __future__ import annotations

from django.contrib import admin

from jobs.entities import UnknownEntity, entity_label, entity_names, entity_run_ids
from jobs.exceptions import InvalidInput

# The run list's filter to the runs that changed one domain row: ?entity=escrow&entity_id=12.
ENTITY_PARAMETER = "entity"
ENTITY_ID_PARAMETER = "entity_id"


def changed_entity(params) -> tuple[str, int] | None:
    """The (entity, pk) a run list is filtered by, None when it is not; InvalidInput naming
    the parameter at fault."""
    entity, entity_id = params.get(ENTITY_PARAMETER), params.get(ENTITY_ID_PARAMETER)
    if entity is None and entity_id is None:
        return None
    if not entity:
        raise InvalidInput({ENTITY_PARAMETER: [f"give one of {', '.join(entity_names())}"]})
    if entity not in entity_names():
        raise InvalidInput({ENTITY_PARAMETER: [str(UnknownEntity(entity, entity_names()))]})
    if entity_id is None or not entity_id.isdigit():
        raise InvalidInput({ENTITY_ID_PARAMETER: ["give the row's id, a whole number"]})
    return entity, int(entity_id)


class ChangedEntityFilter(admin.ListFilter):
    """Exactly the runs that changed one escrow, wallet, cycle, match or prize pool, as its
    app says (jobs.entities); reached from that row's page."""

    title = "changed"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        for name in self.expected_parameters():
            if name in params:
                self.used_parameters[name] = params.pop(name)[-1]
        # The run list refused a bad pair before it got here (JobRunAdmin.changelist_view).
        self.changed = changed_entity(self.used_parameters)

    def has_output(self) -> bool:
        return self.changed is not None

    def expected_parameters(self) -> list[str]:
        return [ENTITY_PARAMETER, ENTITY_ID_PARAMETER]

    def choices(self, changelist):
        entity, pk = self.changed
        yield {
            "selected": True,
            "query_string": changelist.get_query_string(),
            "display": f"{entity_label(entity)} #{pk}",
        }
        yield {
            "selected": False,
            "query_string": changelist.get_query_string(remove=self.expected_parameters()),
            "display": "All runs",
        }

    def queryset(self, request, queryset):
        if self.changed is None:
            return queryset
        entity, pk = self.changed
        return queryset.filter(pk__in=sorted(entity_run_ids(entity, pk)))
