from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from jobs.api.health import healthz, readyz
from jobs.api.metrics import metrics

handler404 = "jobs.api.exception_handlers.page_not_found_json_for_api"

urlpatterns = [
    # The landing page, and where the admin's "View site" link goes.
    path("", RedirectView.as_view(pattern_name="dashboard"), name="home"),
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/v1/", include("jobs.api.urls")),
    path("api/v1/", include("leaderboard.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("dashboard/", include("jobs.dashboard.urls")),
]
