from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from jobs.api.metrics import metrics

handler404 = "jobs.api.exception_handlers.page_not_found_json_for_api"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),
    path("api/v1/", include("jobs.api.urls")),
    path("api/v1/", include("leaderboard.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("dashboard/", include("jobs.dashboard.urls")),
]
