from django.urls import path

from jobs import apis

urlpatterns = [
    path("jobs/", apis.JobListApi.as_view(), name="api-jobs"),
    path("jobs/status", apis.JobStatusApi.as_view(), name="api-jobs-status"),
    path("jobs/<str:name>/", apis.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<str:name>/trigger", apis.JobTriggerApi.as_view(), name="api-job-trigger"),
    path("jobs/<str:name>/pause", apis.JobPauseApi.as_view(), name="api-job-pause"),
    path("jobs/<str:name>/resume", apis.JobResumeApi.as_view(), name="api-job-resume"),
    path("runs/", apis.RunListApi.as_view(), name="api-runs"),
    path("runs/<int:run_id>/", apis.RunDetailApi.as_view(), name="api-run"),
    path("runs/<int:run_id>/retry", apis.RunRetryApi.as_view(), name="api-run-retry"),
    path("queues/", apis.QueueListApi.as_view(), name="api-queues"),
    path(
        "queues/<str:name>/requeue-dead",
        apis.QueueRequeueDeadApi.as_view(),
        name="api-queue-requeue-dead",
    ),
]
