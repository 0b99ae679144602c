"""The integrators' REST API, mounted at /api/v1/ (namespace "api")."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from . import docs, integrations, screening, views

app_name = "api"
urlpatterns = [
    path("", views.ApiRoot.as_view(), name="root"),
    path("agencies", views.AgencyList.as_view(), name="agency-list"),
    path("lists", views.CreditListList.as_view(), name="list-list"),
    path("lists/<slug:code>/batches", integrations.BatchPush.as_view(), name="batch-push"),
    path("lists/<slug:code>/batches/<int:pk>", integrations.BatchStatus.as_view(), name="batch-detail"),
    path("measures", views.MeasureList.as_view(), name="measure-list"),
    path("listings", views.ListingList.as_view(), name="listing-list"),
    path("subjects", views.SubjectList.as_view(), name="subject-list"),
    path("subjects/<int:pk>", views.SubjectDetail.as_view(), name="subject-detail"),
    path("changes", views.ChangeFeed.as_view(), name="change-list"),
    path("check", screening.Check.as_view(), name="check"),
    path("check/counts", screening.CheckCounts.as_view(), name="check-counts"),
    path("screen", screening.Screen.as_view(), name="screen"),
    path("exports", integrations.ExportList.as_view(), name="export-list"),
    path("exports/<slug:scope>.<str:fmt>", integrations.ExportFile.as_view(), name="export-file"),
    path("watchlists", integrations.WatchlistListCreate.as_view(), name="watchlist-list"),
    path("watchlists/<int:pk>", integrations.WatchlistDetail.as_view(), name="watchlist-detail"),
    path("webhooks", integrations.WebhookListCreate.as_view(), name="webhook-list"),
    path("webhooks/<int:pk>/deliveries", integrations.DeliveryList.as_view(), name="delivery-list"),
    path(
        "webhooks/<int:pk>/deliveries/<int:delivery_pk>/replay",
        integrations.DeliveryReplay.as_view(),
        name="delivery-replay",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs.api_docs, name="docs"),
]
