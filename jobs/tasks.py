"""Imported by `rundramatiq` in every worker process: declares the actor of every job.

Every app has registered its jobs by now, so a follow-up naming no job, or a loop of
follow-ups, stops the worker here, before it takes a message.
"""

from jobs.actors import declare_all_actors
from jobs.follow_ups import follow_ups_validate

follow_ups_validate()
declare_all_actors()
