"""Turn uploaded bytes into text without being told the encoding, and find the delimiter.

Agencies export from Excel on Chinese Windows, so GBK/GB18030 is as common as UTF-8. Strict
UTF-8 is tried first because GBK text is almost never valid UTF-8 by accident; GB18030 (a
superset of GBK) second. Decoding is checked chunk by chunk so a 200 MB upload is never held
as one big string.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from typing import TextIO

from charset_normalizer import from_bytes

from lists.importers.base import ImportRejected

UTF8 = "utf-8"
UTF8_SIG = "utf-8-sig"
GB18030 = "gb18030"
_CHUNK = 1 << 20
_DELIMITERS = (",", "\t", ";", "|")
# Below this many non-ASCII bytes, GBK text can be valid UTF-8 by chance: see _tiebreak.
_TIEBREAK_BELOW = 64
# Latin letters with accents, general punctuation, CJK punctuation, full-width forms.
_PLAUSIBLE_RANGES = ((0x00A0, 0x024F), (0x2000, 0x206F), (0x3000, 0x303F), (0xFF00, 0xFFEF))


def detect_encoding(payload: bytes) -> str:
    """Return the codec name that decodes `payload`; raise ImportRejected if none does."""
    if payload.startswith(codecs.BOM_UTF8):
        _check(payload, UTF8_SIG)
        return UTF8_SIG
    if payload.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        _check(payload, "utf-16")  # Excel's "Unicode text" export
        return "utf-16"
    utf8_error = _first_error(payload, UTF8)
    if utf8_error is None:
        return _tiebreak(payload)
    gb_error = _first_error(payload, GB18030)
    if gb_error is None:
        return GB18030
    raise _undecodable(payload, max(utf8_error, gb_error))


def _check(payload: bytes, encoding: str) -> None:
    offset = _first_error(payload, encoding)
    if offset is not None:
        raise _undecodable(payload, offset, encoding)


def _first_error(payload: bytes, encoding: str) -> int | None:
    """Return the offset of the first byte `encoding` cannot decode, or None."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    view = memoryview(payload)
    for start in range(0, len(payload), _CHUNK):
        # Bytes of a character split across chunks are held back and counted in exc.start.
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(view[start : start + _CHUNK], final=start + _CHUNK >= len(payload))
        except UnicodeDecodeError as exc:
            return start - pending + exc.start
    return None


def _tiebreak(payload: bytes) -> str:
    """Return UTF-8, unless the text is short, also valid GB18030, and reads better that way.

    Short GBK text can be valid UTF-8 by chance (农业 in GBK reads as "ũҵ" in UTF-8); the
    reading with more plausible characters wins, and charset-normalizer settles a draw.
    """
    sample = payload[:4096]
    non_ascii = sum(1 for byte in sample if byte > 0x7F)
    if non_ascii == 0 or non_ascii >= _TIEBREAK_BELOW or _first_error(payload, GB18030) is not None:
        return UTF8
    as_utf8, as_gb = (
        _plausible_share(sample.decode(UTF8, "ignore")),
        _plausible_share(sample.decode(GB18030, "ignore")),
    )
    if as_utf8 != as_gb:
        return UTF8 if as_utf8 > as_gb else GB18030
    best = from_bytes(sample, cp_isolation=[UTF8, GB18030]).best()
    return GB18030 if best is not None and best.encoding == GB18030 else UTF8


def _plausible_share(text: str) -> float:
    """Return the share of non-ASCII characters a list file plausibly contains."""
    chars = [c for c in text if ord(c) > 0x7F]
    return sum(_is_plausible(c) for c in chars) / len(chars) if chars else 0.0


def _is_plausible(char: str) -> bool:
    """Return whether a character is common Chinese, CJK or full-width punctuation, or Latin."""
    if any(low <= ord(char) <= high for low, high in _PLAUSIBLE_RANGES):
        return True
    try:
        encoded = char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    # GB2312 rows B0-D7 hold the 3,755 most common hanzi.
    return len(encoded) == 2 and 0xB0 <= encoded[0] <= 0xD7


def _undecodable(payload: bytes, offset: int, encoding: str | None = None) -> ImportRejected:
    line = payload.count(b"\n", 0, offset) + 1
    what = encoding.upper() if encoding else "UTF-8 or GBK/GB18030"
    message = (
        f"the file is not valid {what} text: undecodable byte 0x{payload[offset]:02X} at byte offset "
        f"{offset} (line {line}); save it again as CSV UTF-8"
    )
    return ImportRejected(message, line_no=line)


def open_text(payload: bytes) -> TextIO:
    """Return a text stream over the payload in its detected encoding, newlines untranslated."""
    return io.TextIOWrapper(io.BytesIO(payload), encoding=detect_encoding(payload), newline="")


def capped_lines(stream: TextIO, max_chars: int, oversized: set[int]) -> Iterator[str]:
    """Yield the stream's lines; a line over `max_chars` is skipped, its number put in `oversized`.

    The csv module would otherwise build a 100 MB line in memory before it could complain.
    """
    line_no = 0
    while line := stream.readline(max_chars + 1):
        line_no += 1
        if len(line) > max_chars and not line.endswith(("\n", "\r")):
            oversized.add(line_no)
            _skip_line(stream, max_chars)
            yield "\n"
        else:
            yield line


def _skip_line(stream: TextIO, chunk: int) -> None:
    while (rest := stream.readline(chunk)) and not rest.endswith(("\n", "\r")):
        pass


def sniff_delimiter(line: str) -> str:
    """Return the delimiter used in a header line: comma, tab, semicolon or bar (never ，)."""
    counts = {d: _count_outside_quotes(line, d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])  # ties keep the earlier, so comma wins
    return best if counts[best] else ","


def _count_outside_quotes(line: str, delimiter: str) -> int:
    return sum(part.count(delimiter) for part in line.split('"')[::2])
