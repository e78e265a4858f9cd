from django.urls import path

from jobs import dashboard

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("jobs/<str:name>/action", dashboard.job_action, name="dashboard-job-action"),
    path("runs/<int:run_id>/", dashboard.run_detail, name="dashboard-run"),
    path("runs/<int:run_id>/retry", dashboard.run_retry, name="dashboard-run-retry"),
]
