"""`field__any=[...]`: membership in a list sent as one array parameter on PostgreSQL.

`__in` spells out one placeholder per value, which Django and the driver build and parse for
every batch of thousands of ids; `= ANY(%s)` binds the whole list as a single array. Other
databases get the usual `IN (...)`. The sweeps of every app use it, so the engine registers
it, once, from `JobsConfig.ready()`.
"""

from django.db.models import Field, ForeignObject, Lookup
from django.db.models.lookups import In


class AnyOf(Lookup):
    """Values are passed as they are (ids, not model instances)."""

    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self):
        return list(self.rhs)

    def as_sql(self, compiler, connection):
        return In(self.lhs, self.rhs).as_sql(compiler, connection)

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, self.rhs)


def register_any_lookup() -> None:
    # Relations keep a lookup registry of their own.
    Field.register_lookup(AnyOf)
    ForeignObject.register_lookup(AnyOf)
