from django.urls import path

from jobs.api.views.audit import AuditListApi
from jobs.api.views.fleet import (
    FleetApi,
    FleetDrainApi,
    FleetDrainEndApi,
    RateLimitListApi,
    RateLimitSetApi,
)
from jobs.api.views.jobs import (
    JobDetailApi,
    JobHistoryApi,
    JobListApi,
    JobPauseApi,
    JobResumeApi,
    JobStatusApi,
    JobTriggerApi,
    JobTriggerByNameApi,
)
from jobs.api.views.queues import (
    QueueClearApi,
    QueueConcurrencyApi,
    QueueDeadLetterDeleteApi,
    QueueDeadLetterListApi,
    QueueDeadLetterRequeueApi,
    QueueListApi,
    QueuePauseApi,
    QueueRequeueDeadApi,
    QueueResumeApi,
)
from jobs.api.views.runs import RunCancelApi, RunDetailApi, RunListApi, RunLogApi, RunRetryApi
from jobs.api.views.schedules import (
    ScheduleDetailApi,
    ScheduleListApi,
    SchedulePauseApi,
    ScheduleResumeApi,
)
from jobs.api.views.workers import WorkerListApi

urlpatterns = [
    path("jobs/", JobListApi.as_view(), name="api-jobs"),
    path("jobs/status", JobStatusApi.as_view(), name="api-jobs-status"),
    # The arcade seed's paths, before `jobs/<name>/` would take "history" for a job's name.
    path("jobs/history", JobHistoryApi.as_view(), name="api-jobs-history"),
    path("jobs/trigger/<str:name>", JobTriggerByNameApi.as_view(), name="api-jobs-trigger-by-name"),
    path("jobs/<str:name>/", JobDetailApi.as_view(), name="api-job"),
    path("jobs/<str:name>/trigger", JobTriggerApi.as_view(), name="api-job-trigger"),
    path("jobs/<str:name>/pause", JobPauseApi.as_view(), name="api-job-pause"),
    path("jobs/<str:name>/resume", JobResumeApi.as_view(), name="api-job-resume"),
    path("runs/", RunListApi.as_view(), name="api-runs"),
    path("runs/<int:run_id>/", RunDetailApi.as_view(), name="api-run"),
    path("runs/<int:run_id>/log", RunLogApi.as_view(), name="api-run-log"),
    path("runs/<int:run_id>/retry", RunRetryApi.as_view(), name="api-run-retry"),
    path("runs/<int:run_id>/cancel", RunCancelApi.as_view(), name="api-run-cancel"),
    path("schedules/", ScheduleListApi.as_view(), name="api-schedules"),
    path("schedules/<int:schedule_id>/", ScheduleDetailApi.as_view(), name="api-schedule"),
    path(
        "schedules/<int:schedule_id>/pause",
        SchedulePauseApi.as_view(),
        name="api-schedule-pause",
    ),
    path(
        "schedules/<int:schedule_id>/resume",
        ScheduleResumeApi.as_view(),
        name="api-schedule-resume",
    ),
    path("queues/", QueueListApi.as_view(), name="api-queues"),
    path("queues/<str:name>/pause", QueuePauseApi.as_view(), name="api-queue-pause"),
    path("queues/<str:name>/resume", QueueResumeApi.as_view(), name="api-queue-resume"),
    path(
        "queues/<str:name>/concurrency",
        QueueConcurrencyApi.as_view(),
        name="api-queue-concurrency",
    ),
    path("queues/<str:name>/clear", QueueClearApi.as_view(), name="api-queue-clear"),
    path(
        "queues/<str:name>/dead-letters",
        QueueDeadLetterListApi.as_view(),
        name="api-queue-dead-letters",
    ),
    path(
        "queues/<str:name>/dead-letters/requeue",
        QueueDeadLetterRequeueApi.as_view(),
        name="api-queue-dead-letters-requeue",
    ),
    path(
        "queues/<str:name>/dead-letters/delete",
        QueueDeadLetterDeleteApi.as_view(),
        name="api-queue-dead-letters-delete",
    ),
    path(
        "queues/<str:name>/requeue-dead",
        QueueRequeueDeadApi.as_view(),
        name="api-queue-requeue-dead",
    ),
    path("rate-limits/", RateLimitListApi.as_view(), name="api-rate-limits"),
    path("rate-limits/<str:name>", RateLimitSetApi.as_view(), name="api-rate-limit"),
    path("audit/", AuditListApi.as_view(), name="api-audit"),
    path("fleet/", FleetApi.as_view(), name="api-fleet"),
    path("fleet/drain", FleetDrainApi.as_view(), name="api-fleet-drain"),
    path("workers/", WorkerListApi.as_view(), name="api-workers"),
    path("fleet/drain/end", FleetDrainEndApi.as_view(), name="api-fleet-drain-end"),
]
