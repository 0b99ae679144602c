"""Keep batches' raw files encrypted at rest: they hold full personal ID numbers.

Format (version 1), AES-256-GCM in 1 MiB chunks, so neither side ever holds a second full copy:

    header  = b"XYRF" | version (1 byte) | key id (8) | salt (16) | chunk size (4, big-endian)
    chunk i = AES-GCM(file key, nonce = i as 11 bytes | last-chunk flag (1), data, aad = header)

The file key is HKDF-SHA256(master key, salt) with a fresh random salt per file, so nonces never
repeat under one key. The counter and last-chunk flag in each nonce make reordered, dropped or
truncated chunks fail authentication (the STREAM construction, as in age and Tink). The key id
is a fingerprint of the master key: it names the key needed, and lets old keys stay readable
after a rotation (settings.UPLOAD_ENCRYPTION_OLD_KEYS).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import re
import struct
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.files.base import File

from ..models import Batch

MAGIC = b"XYRF"
VERSION = 1
CHUNK_SIZE = 1024 * 1024
_HEADER = struct.Struct(">4sB8s16sI")
_TAG_SIZE = 16
_MAX_CHUNK_SIZE = 64 * 1024 * 1024  # a header asking for more is damaged, not a real file
SUFFIX = ".enc"
_UNSAFE_NAME = re.compile(r"[^\w.\-]+")


class RawFileError(Exception):
    """A stored raw file cannot be read: no matching key, damaged or altered; the message says which."""


def store_raw_file(batch: Batch, payload: bytes) -> None:
    """Encrypt the payload and save it as the batch's raw file (the batch itself is not saved)."""
    name = f"{batch.sha256[:16]}-{_safe_name(batch.original_filename)}{SUFFIX}"
    batch.raw_file.save(name, _EncryptedContent(payload, _current_key()), save=False)


def read_raw_file(batch: Batch) -> bytes:
    """Return the decrypted raw file of a batch, or raise RawFileError if it cannot be trusted."""
    batch.raw_file.open("rb")
    try:
        return decrypt_stream(batch.raw_file, name=f"batch {batch.pk}")
    finally:
        batch.raw_file.close()


def key_id(master: str) -> bytes:
    """Return the 8-byte fingerprint that names a master key in file headers."""
    return hmac.new(master.encode(), b"xinyong raw-file key id", hashlib.sha256).digest()[:8]


def encrypt_chunks(payload: bytes, master: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield the header, then each encrypted chunk of the payload."""
    salt = os.urandom(16)
    header = _HEADER.pack(MAGIC, VERSION, key_id(master), salt, chunk_size)
    cipher = AESGCM(_file_key(master, salt))
    yield header
    view = memoryview(payload)
    count = max(1, -(-len(payload) // chunk_size))  # an empty file still gets one (final) chunk
    for index in range(count):
        data = view[index * chunk_size : (index + 1) * chunk_size]
        yield cipher.encrypt(_nonce(index, last=index == count - 1), data, header)


def decrypt_stream(stream: io.RawIOBase | io.BufferedIOBase | File, *, name: str = "raw file") -> bytes:
    """Read an encrypted raw file from a binary stream and return its plaintext."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size or header[:4] != MAGIC:
        raise RawFileError(f"{name} is not an encrypted raw file (no Xinyong header)")
    _, version, kid, salt, chunk_size = _HEADER.unpack(header)
    if version != VERSION:
        raise RawFileError(f"{name} has format version {version}; this release reads version {VERSION}")
    if not 0 < chunk_size <= _MAX_CHUNK_SIZE:
        raise RawFileError(f"{name} has a damaged header (chunk size {chunk_size})")
    cipher = AESGCM(_file_key(_key_for(kid, name), salt))
    plaintext = io.BytesIO()  # grows in place; getvalue() hands over its buffer without a copy
    frame = chunk_size + _TAG_SIZE
    block, index = stream.read(frame), 0
    while True:
        following = stream.read(frame) if len(block) == frame else b""
        last = not following
        try:
            plaintext.write(cipher.decrypt(_nonce(index, last=last), block, header))
        except InvalidTag:
            raise RawFileError(
                f"{name} failed its integrity check (chunk {index}): it was altered or damaged on disk"
            ) from None
        if last:
            return plaintext.getvalue()
        block, index = following, index + 1


def _safe_name(filename: str) -> str:
    # 60 characters keep "batches/YYYY/MM/<hash>-<name>.enc" within the FileField's 100.
    name = _UNSAFE_NAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1])[-60:]
    return name or "upload"


def _nonce(index: int, *, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _file_key(master: str, salt: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"xinyong raw-file v1")
    return hkdf.derive(master.encode())


def _current_key() -> str:
    master = settings.UPLOAD_ENCRYPTION_KEY
    if not master:
        raise RawFileError("UPLOAD_ENCRYPTION_KEY is not set: raw files cannot be stored")
    return master


def _key_for(kid: bytes, name: str) -> str:
    """Return the configured master key (current or old) whose fingerprint is kid."""
    for master in [settings.UPLOAD_ENCRYPTION_KEY, *settings.UPLOAD_ENCRYPTION_OLD_KEYS]:
        if master and hmac.compare_digest(key_id(master), kid):
            return master
    raise RawFileError(
        f"{name} was encrypted with key {kid.hex()}, which is neither UPLOAD_ENCRYPTION_KEY nor one of "
        "UPLOAD_ENCRYPTION_OLD_KEYS"
    )


class _EncryptedContent(File):
    """A file whose chunks are the encrypted payload, so the storage writes it chunk by chunk."""

    def __init__(self, payload: bytes, master: str) -> None:
        super().__init__(None)
        self._payload, self._master = payload, master

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """Yield the encrypted file (the chunk size is the format's, not the caller's)."""
        return encrypt_chunks(self._payload, self._master)
