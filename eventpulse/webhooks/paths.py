"""JSON paths for webhook mappings: the *singular queries* of RFC 9535 (JSONPath), nothing more.

A mapping takes one value per event field, so it needs exactly the part of JSONPath that names one
value: ``$`` followed by name selectors (``.name`` or ``['any name']`` / ``["any name"]``) and index
selectors (``[0]``, ``[-1]`` from the end). Wildcards, slices, filters and descendants select many
values and are refused when a mapping is registered. This is small enough to write out here, so the
gateway needs no JSONPath library (none is a runtime dependency of EventPulse).

>>> compile_path("$.data.object['customer id'][0]")
('data', 'object', 'customer id', 0)
>>> resolve({"a": [{"b": 1}]}, compile_path("$.a[-1].b"))
1
"""

from __future__ import annotations

import re
from typing import Any

Path = tuple[str | int, ...]
MISSING: Any = object()
"""What `resolve` returns when the path names nothing in the document."""

_SHORTHAND = re.compile(r"\.([A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)")
_INDEX = re.compile(r"\[\s*(-?(?:0|[1-9][0-9]*))\s*\]")
_QUOTED = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "/": "/", "\\": "\\", "'": "'", '"': '"'}


class PathError(ValueError):
    """The text is not a singular JSONPath query."""


def compile_path(text: str) -> Path:
    """The selectors of ``text`` (a name is a str, an index an int); raises `PathError`."""
    if not text.startswith("$"):
        raise PathError(f"{text!r}: a path starts with '$'")
    at = 1
    out: list[str | int] = []
    while at < len(text):
        for pattern in (_SHORTHAND, _INDEX, _QUOTED):
            match = pattern.match(text, at)
            if match:
                break
        else:
            raise PathError(
                f"{text!r}: only .name, ['name'] and [index] selectors are supported (at character {at + 1})"
            )
        if pattern is _INDEX:
            out.append(int(match.group(1)))
        elif pattern is _QUOTED:
            out.append(_unescape(match.group(1) if match.group(1) is not None else match.group(2), text))
        else:
            out.append(match.group(1))
        at = match.end()
    return tuple(out)


def _unescape(quoted: str, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return chr(int(match.group(1), 16))
        char = match.group(2)
        if char not in _ESCAPES:
            raise PathError(f"{text!r}: unknown escape \\{char}")
        return _ESCAPES[char]

    return re.sub(r"\\(?:u([0-9A-Fa-f]{4})|(.))", replace, quoted, flags=re.DOTALL)


def resolve(document: Any, path: Path) -> Any:
    """The value ``path`` names in ``document``, or `MISSING`."""
    value = document
    for selector in path:
        if isinstance(selector, int):
            if not isinstance(value, list) or not -len(value) <= selector < len(value):
                return MISSING
        elif not isinstance(value, dict) or selector not in value:
            return MISSING
        value = value[selector]
    return value
