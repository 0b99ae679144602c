from django.urls import path

from . import views

app_name = "cases"
urlpatterns = [
    path("objection/new/<int:listing_id>/", views.objection_new, name="objection-new"),
    path("repair/new/<int:listing_id>/", views.repair_new, name="repair-new"),
    path("filed/", views.filed, name="filed"),
    path("track/", views.track, name="track"),
    path("<str:number>/", views.case_detail, name="case-detail"),
    path("<str:number>/evidence/", views.case_evidence_add, name="case-evidence-add"),
    path("<str:number>/evidence/<int:evidence_id>/", views.case_evidence, name="case-evidence"),
]
