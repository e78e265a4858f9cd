from django.urls import path

from jobs.api.views.jobs import (
    JobDetailApi,
    JobListApi,
    JobPauseApi,
    JobResumeApi,
    JobStatusApi,
    JobTriggerApi,
)
from jobs.api.views.queues import QueueListApi, QueueRequeueDeadApi
from jobs.api.views.runs import RunDetailApi, RunListApi, RunRetryApi
from jobs.api.views.schedules import (
    ScheduleDetailApi,
    ScheduleListApi,
    SchedulePauseApi,
    ScheduleResumeApi,
)

urlpatterns = [
    path("jobs/", JobListApi.as_view(), name="api-jobs"),
    path("jobs/status", JobStatusApi.as_view(), name="api-jobs-status"),
    path("jobs/<str:name>/", JobDetailApi.as_view(), name="api-job"),
    path("jobs/<str:name>/trigger", JobTriggerApi.as_view(), name="api-job-trigger"),
    path("jobs/<str:name>/pause", JobPauseApi.as_view(), name="api-job-pause"),
    path("jobs/<str:name>/resume", JobResumeApi.as_view(), name="api-job-resume"),
    path("runs/", RunListApi.as_view(), name="api-runs"),
    path("runs/<int:run_id>/", RunDetailApi.as_view(), name="api-run"),
    path("runs/<int:run_id>/retry", RunRetryApi.as_view(), name="api-run-retry"),
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
    path(
        "queues/<str:name>/requeue-dead",
        QueueRequeueDeadApi.as_view(),
        name="api-queue-requeue-dead",
    ),
]
