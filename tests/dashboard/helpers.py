"""A test-only job that takes parameters, for the admin's and the dashboard's forms (the domain
jobs' parameters are theirs to change)."""

from __future__ import annotations

from contextlib import contextmanager

from rest_framework import serializers

from jobs.params import IdListField
from tests.scheduling.helpers import registered_job

TARGETED = "targeted_sweep"


class TargetParams(serializers.Serializer):
    ids = IdListField(required=False, help_text="Just these rows.")
    game = serializers.ChoiceField(choices=["snake", "pong"], required=False)


@contextmanager
def targeted_job():
    """`targeted_sweep`, accepting `ids` (a list of ids) and `game` (snake or pong)."""
    with registered_job(TARGETED, params=TargetParams, concurrent_targets=True) as spec:
        yield spec
