from django.urls import path

from jobs.api import views

urlpatterns = [
    path("jobs/", views.JobListApi.as_view(), name="api-jobs"),
    path("jobs/status", views.JobStatusApi.as_view(), name="api-jobs-status"),
    path("jobs/<str:name>/", views.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<str:name>/trigger", views.JobTriggerApi.as_view(), name="api-job-trigger"),
    path("jobs/<str:name>/pause", views.JobPauseApi.as_view(), name="api-job-pause"),
    path("jobs/<str:name>/resume", views.JobResumeApi.as_view(), name="api-job-resume"),
    path("runs/", views.RunListApi.as_view(), name="api-runs"),
    path("runs/<int:run_id>/", views.RunDetailApi.as_view(), name="api-run"),
    path("runs/<int:run_id>/retry", views.RunRetryApi.as_view(), name="api-run-retry"),
    path("schedules/", views.ScheduleListApi.as_view(), name="api-schedules"),
    path("schedules/<int:schedule_id>/", views.ScheduleDetailApi.as_view(), name="api-schedule"),
    path(
        "schedules/<int:schedule_id>/pause",
        views.SchedulePauseApi.as_view(),
        name="api-schedule-pause",
    ),
    path(
        "schedules/<int:schedule_id>/resume",
        views.ScheduleResumeApi.as_view(),
        name="api-schedule-resume",
    ),
    path("queues/", views.QueueListApi.as_view(), name="api-queues"),
    path(
        "queues/<str:name>/requeue-dead",
        views.QueueRequeueDeadApi.as_view(),
        name="api-queue-requeue-dead",
    ),
]
