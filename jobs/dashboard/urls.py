from django.urls import path

from jobs.dashboard import control_views, dead_letter_views, job_views, run_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("jobs/<str:name>/", job_views.job_detail, name="dashboard-job"),
    path("jobs/<str:name>/action", views.job_action, name="dashboard-job-action"),
    path(
        "schedules/<int:schedule_id>/action",
        views.schedule_action,
        name="dashboard-schedule-action",
    ),
    path("runs/<int:run_id>/", run_views.run_detail, name="dashboard-run"),
    path("runs/<int:run_id>/retry", run_views.run_retry, name="dashboard-run-retry"),
    path("runs/<int:run_id>/cancel", run_views.run_cancel, name="dashboard-run-cancel"),
    path("queues/<str:name>/action", control_views.queue_action, name="dashboard-queue-action"),
    path(
        "queues/<str:name>/concurrency",
        control_views.queue_concurrency,
        name="dashboard-queue-concurrency",
    ),
    path("queues/<str:name>/clear", control_views.queue_clear_view, name="dashboard-queue-clear"),
    path(
        "queues/<str:name>/dead-letters/",
        dead_letter_views.dead_letters,
        name="dashboard-dead-letters",
    ),
    path(
        "queues/<str:name>/dead-letters/requeue",
        dead_letter_views.dead_letters_requeue,
        name="dashboard-dead-letters-requeue",
    ),
    path(
        "queues/<str:name>/dead-letters/delete",
        dead_letter_views.dead_letters_delete,
        name="dashboard-dead-letters-delete",
    ),
    path(
        "rate-limits/<str:name>",
        control_views.rate_limit_action,
        name="dashboard-rate-limit",
    ),
    path("fleet/drain", control_views.fleet_drain, name="dashboard-fleet-drain"),
]
