from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from . import demo_feed, views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("healthz/work", views.healthz_work, name="healthz-work"),
    path("i18n/", include("django.conf.urls.i18n")),
    # One sign-in for staff and admin: the throttled one with TOTP (issue 8, portal/staff/auth.py).
    path("admin/login/", RedirectView.as_view(pattern_name="staff:login", query_string=True)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("portal.api.urls")),
    path("staff/", include("portal.staff.urls")),
    path("cases/", include("portal.cases.urls")),
    path("demo-feed/<slug:list_code>/", demo_feed.demo_feed, name="demo-feed"),
    path("", include("portal.public.urls")),
    path("", views.HomeView.as_view(), name="home"),
]
