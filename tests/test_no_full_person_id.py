"""No response, log line or export of the whole suite shows a full personal ID number (issue 8).

tests/pii_scan.py records them while the suite runs; the plugin moves the scan test to the very end.
Run alone, it still exercises the pages and endpoints that show persons.
"""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import reverse

from tests import pii_scan
from tests.factories import valid_uscc
from tests.portal.api_helpers import auth, make_key, make_person, person_id, publish


def test_the_scanner_finds_a_full_id_and_ignores_masked_ids_and_uscc():
    full = person_id(7)
    assert pii_scan.find_person_ids(f"id {full}, ") == [full]
    assert pii_scan.find_person_ids(f"{full[:4]}**********{full[-4:]}") == []
    assert pii_scan.find_person_ids(valid_uscc(7)) == []
    assert pii_scan.find_person_ids(full[:-1] + ("0" if full[-1] != "0" else "1")) == []  # bad check digit
    assert pii_scan.find_person_ids("x" + full + "9") == []  # part of a longer number


def test_the_recorder_sees_log_records():
    before = len(pii_scan.FINDINGS)
    logging.getLogger("tests.pii").warning("looked up %s", person_id(8))
    found = pii_scan.FINDINGS[before:]
    del pii_scan.FINDINGS[before:]  # planted on purpose: not a finding of the suite
    assert [f.number for f in found] == [person_id(8)]


@pytest.mark.django_db
def test_the_recorder_sees_test_client_responses():
    before = len(pii_scan.FINDINGS)
    Client().get(reverse("staff:login"), {"next": f"/p/{person_id(10)}/"})  # the page echoes `next`
    found = pii_scan.FINDINGS[before:]
    del pii_scan.FINDINGS[before:]  # planted on purpose
    assert [f.number for f in found] == [person_id(10)]


def test_the_recorder_sees_export_files(settings, tmp_path):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    settings.MEDIA_ROOT = tmp_path
    before = len(pii_scan.FINDINGS)
    default_storage.save("exports/planted.csv", ContentFile(f"id,{person_id(9)}\n".encode()))
    default_storage.save(
        "batches/raw.csv", ContentFile(f"id,{person_id(9)}\n".encode())
    )  # raw uploads: private
    found = pii_scan.FINDINGS[before:]
    del pii_scan.FINDINGS[before:]  # planted on purpose
    assert [f.number for f in found] == [person_id(9)]


@pytest.mark.django_db
def test_pages_and_api_answers_about_a_person_show_the_masked_id(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    subject, pid = make_person(11)
    publish(subject=subject)
    _, secret = make_key(["screen", "read"])
    client = Client()
    answers = [
        client.get(reverse("public:subject-detail", args=[subject.pk])),
        client.get(reverse("public:search"), {"q": "张伟"}),
        client.get(reverse("api:subject-detail", args=[subject.pk])),
        client.get(reverse("api:check"), {"identifier": pid}, **auth(secret)),
        client.post(
            reverse("api:screen"),
            {"queries": [{"identifier": pid}]},
            content_type="application/json",
            **auth(secret),
        ),
    ]
    for response in answers:
        assert response.status_code == 200, response.content[:300]
        assert pid not in response.content.decode()
    assert subject.person_id_masked in answers[0].content.decode()


@pytest.mark.django_db
def test_exports_of_a_person_are_scanned_and_show_the_masked_id(settings, tmp_path):
    from lists.services.exports import export_listings

    settings.MEDIA_ROOT = tmp_path
    subject, pid = make_person(12)
    publish(subject=subject)
    for fmt in ("csv", "jsonl"):
        export = export_listings(credit_list=None, fmt=fmt)
        with export.file.open("rb") as stored:
            text = stored.read().decode("utf-8-sig")
        assert subject.person_id_masked in text and pid not in text


def test_no_response_log_or_export_of_the_suite_shows_a_full_person_id():
    assert not pii_scan.FINDINGS, "full personal ID numbers were shown:\n" + "\n".join(
        str(f) for f in dict.fromkeys(pii_scan.FINDINGS)
    )
