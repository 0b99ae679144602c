"""Raw uploaded files are encrypted at rest: no full personal ID on disk, tampering and wrong keys fail."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lists.models import Batch, CreditList
from lists.services import batches
from lists.services.raw_files import (
    MAGIC,
    RawFileError,
    decrypt_stream,
    encrypt_chunks,
    key_id,
    read_raw_file,
)
from tests.portal.api_helpers import person_id

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
HEADER = "姓名,证件号码,主体类型,文书号,决定日期\n"


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def person_list() -> CreditList:
    return CreditList.objects.filter(subject_types__contains=["natural_person"]).first()


def receive(credit_list: CreditList, payload: bytes) -> Batch:
    return batches.receive_batch(
        credit_list=credit_list, payload=payload, filename="people.csv", mode="incremental", origin="upload"
    )


def people_csv(*numbers: str) -> bytes:
    rows = "".join(f"张{n},{pid},自然人,（2025）京01执{n}号,2025-01-02\n" for n, pid in enumerate(numbers, 1))
    return (HEADER + rows).encode()


def test_the_stored_file_holds_no_personal_id_number_of_the_upload(person_list):
    full = person_id(3)
    payload = people_csv(full)
    batch = receive(person_list, payload)
    on_disk = Path(batch.raw_file.path).read_bytes()
    assert on_disk.startswith(MAGIC)
    assert full.encode() not in on_disk and full[-10:].encode() not in on_disk
    assert "张1".encode() not in on_disk  # nothing of the file is readable, names included
    assert batch.raw_file.name.endswith(".enc")
    # Duplicate detection still compares the uploaded bytes, not the ciphertext.
    assert batch.sha256 == hashlib.sha256(payload).hexdigest() and batch.file_size == len(payload)


def test_the_round_trip_returns_the_upload_and_validation_reads_it(person_list):
    payload = people_csv(person_id(4), person_id(5))
    batch = receive(person_list, payload)
    assert read_raw_file(batch) == payload
    processed = batches.process_batch(batch_id=batch.pk)
    assert processed.status != Batch.Status.FAILED, processed.error
    assert processed.counts["rows"] == 2


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 48, 100])
def test_chunked_round_trip_at_every_boundary(size, settings):
    payload = os.urandom(size)
    stored = b"".join(encrypt_chunks(payload, settings.UPLOAD_ENCRYPTION_KEY, chunk_size=16))
    assert decrypt_stream(io.BytesIO(stored)) == payload


def test_two_stores_of_one_file_differ_on_disk():
    payload = b"same bytes"
    assert b"".join(encrypt_chunks(payload, "k" * 43)) != b"".join(encrypt_chunks(payload, "k" * 43))


def test_an_altered_file_is_refused_and_its_batch_fails_with_the_reason(person_list):
    batch = receive(person_list, people_csv(person_id(6)))
    path = Path(batch.raw_file.path)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01  # one bit of the ciphertext
    path.write_bytes(bytes(data))
    with pytest.raises(RawFileError, match="failed its integrity check .* altered or damaged"):
        read_raw_file(batch)
    failed = batches.process_batch(batch_id=batch.pk)
    assert failed.status == Batch.Status.FAILED and "integrity check" in failed.error


@pytest.mark.parametrize(
    "damage",
    [
        lambda frames: frames[:-1],  # last chunk dropped: truncation
        lambda frames: [frames[0], frames[2], frames[1], *frames[3:]],  # chunks reordered
        lambda frames: [*frames, frames[-1]],  # a chunk appended
        lambda frames: [frames[0][:5] + b"\x07" + frames[0][6:], *frames[1:]],  # header's key id edited
        lambda frames: [frames[0][:20] + b"\x07" + frames[0][21:], *frames[1:]],  # header's salt edited
    ],
)
def test_truncated_reordered_or_extended_files_are_refused(damage, settings):
    frames = list(encrypt_chunks(b"x" * 50, settings.UPLOAD_ENCRYPTION_KEY, chunk_size=16))
    assert decrypt_stream(io.BytesIO(b"".join(frames))) == b"x" * 50
    with pytest.raises(RawFileError):
        decrypt_stream(io.BytesIO(b"".join(damage(frames))))


def test_a_wrong_key_fails_clearly_and_an_old_key_still_reads_after_rotation(person_list, settings):
    payload = people_csv(person_id(7))
    batch = receive(person_list, payload)
    original = settings.UPLOAD_ENCRYPTION_KEY
    settings.UPLOAD_ENCRYPTION_KEY = "another-key-" + "z" * 32
    with pytest.raises(RawFileError, match=f"encrypted with key {key_id(original).hex()}, which is neither"):
        read_raw_file(batch)
    settings.UPLOAD_ENCRYPTION_OLD_KEYS = [original]
    assert read_raw_file(batch) == payload


def test_a_file_without_the_header_is_refused(person_list):
    batch = receive(person_list, people_csv(person_id(8)))
    Path(batch.raw_file.path).write_bytes(people_csv(person_id(8)))
    with pytest.raises(RawFileError, match="not an encrypted raw file"):
        read_raw_file(batch)


def test_production_settings_require_the_key():
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "s" * 50}
    env.pop("UPLOAD_ENCRYPTION_KEY", None)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "portal.settings"}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "UPLOAD_ENCRYPTION_KEY must be set" in result.stderr
