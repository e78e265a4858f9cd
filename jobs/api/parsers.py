"""The API's one parser: JSON bodies within limits, or a 400 before anything is parsed."""

from __future__ import annotations

import io
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Every body the API takes is one object of a few fields: its largest, a schedule's notes
# (2,000 characters, 12 bytes each when JSON-escaped astral ones) with a reason, or a run's
# params of up to 1,000 ids, fit well within this.
MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 8
# A JSON string, escapes included; what is left are the brackets that nest.
JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class BodyTooLarge(ParseError):
    default_code = "too_large"
    default_detail = f"The body is too large: the API takes at most {MAX_BODY_BYTES} bytes."


def nesting_depth(body: bytes) -> int:
    """How deep arrays and objects nest, counted without recursion: json.load recurses."""
    depth = deepest = 0
    for byte in JSON_STRING.sub(b'""', body):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge()
        if nesting_depth(body) > MAX_DEPTH:
            raise ParseError(
                f"JSON nested deeper than {MAX_DEPTH} levels is refused.", code="too_deep"
            )
        return super().parse(io.BytesIO(body), media_type, parser_context)
