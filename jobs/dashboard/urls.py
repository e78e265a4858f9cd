from django.urls import path

from jobs.dashboard import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("jobs/<str:name>/action", views.job_action, name="dashboard-job-action"),
    path(
        "schedules/<int:schedule_id>/action",
        views.schedule_action,
        name="dashboard-schedule-action",
    ),
    path("runs/<int:run_id>/", views.run_detail, name="dashboard-run"),
    path("runs/<int:run_id>/retry", views.run_retry, name="dashboard-run-retry"),
]
