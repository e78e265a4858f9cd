"""The jobs API: one view per operation, a module per resource (`jobs`, `runs`, `schedules`,
`queues`), with what they share in `common`; each parses, calls one service or selector, reports.

Reads need a staff user (schedules also their view permission); every write also needs its
model permission. Errors are mapped to 4xx answers by
`jobs.api.exception_handlers.api_exception_handler`.
"""
