"""Input and output serializers of the jobs API, a module per resource: `jobs`, `runs`,
`schedules` and `queues`, with the strict fields, the envelope and the error shape they share
in `common`.

Inputs are strict: unknown fields, wrong JSON types, out-of-range numbers and times, blank or
overlong text are refused with a message on the field, and the schema says so. Outputs are
wrapped in the seeds' envelope `{"success": true, "data"}`.
"""
