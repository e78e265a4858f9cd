"""Imported by `rundramatiq` in every worker process: declares the actor of every job."""

from jobs.actors import declare_all_actors

declare_all_actors()
