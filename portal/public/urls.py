from django.urls import path

from . import views

app_name = "public"
urlpatterns = [
    path("search/", views.search, name="search"),
    path("subjects/<int:pk>/", views.SubjectDetailView.as_view(), name="subject-detail"),
    path("subjects/<int:pk>/report/", views.report_page, name="report-page"),
    path("subjects/<int:pk>/report.pdf", views.report_pdf, name="report-pdf"),
    path("reports/verify/", views.report_verify, name="report-verify"),
    path("agencies/", views.AgencyDirectoryView.as_view(), name="agency-list"),
    path("lists/", views.ListDirectoryView.as_view(), name="list-list"),
    path("measures/", views.MeasureCatalogueView.as_view(), name="measure-list"),
    path("statistics/", views.StatisticsView.as_view(), name="statistics"),
]
