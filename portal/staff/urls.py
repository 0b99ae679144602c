from django.urls import path

app_name = "staff"
# Uploads, batches, publishing (issue 4).
from . import auth, views  # noqa: E402

urlpatterns: list = [
    path("login/", auth.ThrottledLoginView.as_view(), name="login"),  # throttled + TOTP (issue 8)
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("", views.dashboard, name="dashboard"),
    path("upload/", views.upload, name="batch-upload"),
    path("batches/<int:pk>/", views.batch_detail, name="batch-detail"),
    path("batches/<int:pk>/status.json", views.batch_status, name="batch-status"),
    path("batches/<int:pk>/rows/", views.batch_rows, name="batch-rows"),
    path("batches/<int:pk>/problems.csv", views.batch_problems, name="batch-problems"),
    path("batches/<int:pk>/mapping/", views.batch_mapping, name="batch-mapping"),
    path("batches/<int:pk>/publish/", views.batch_publish, name="batch-publish"),
    path("batches/<int:pk>/reject/", views.batch_reject, name="batch-reject"),
    path("batches/<int:pk>/rollback/", views.batch_rollback, name="batch-rollback"),
    path("lists/<slug:code>/template.csv", views.list_template, name="list-template"),
]

# Objections and repair applications (issue 7).
from . import cases  # noqa: E402

urlpatterns += [
    path("cases/", cases.case_list, name="case-list"),
    path("cases/<int:pk>/", cases.case_detail, name="case-detail"),
    path("cases/<int:pk>/review/", cases.case_review, name="case-review"),
    path("cases/<int:pk>/decide/", cases.case_decide, name="case-decide"),
    path("cases/<int:pk>/evidence/<int:evidence_id>/", cases.case_evidence, name="case-evidence"),
]

# Sources synced from agency feeds (issue 5).
from . import sources  # noqa: E402

urlpatterns += [
    path("sources/", sources.source_list, name="source-list"),
    path("sources/<int:pk>/sync/", sources.source_sync, name="source-sync"),
]

# Staff sign-in hardening: the TOTP authenticator page (issue 8, portal/staff/auth.py).
urlpatterns += [path("totp/", auth.totp, name="totp")]
