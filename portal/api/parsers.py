"""Request parsers of the API."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering too deeply nested JSON with a 400 instead of a server error.

    Python's json decoder raises RecursionError (not ValueError, which DRF catches) at about a
    thousand levels, so `[[[[…]]]]` ten thousand deep used to crash the request.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply") from None
