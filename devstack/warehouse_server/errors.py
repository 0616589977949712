"""ClickHouse errors as the HTTP interface reports them.

chDB raises ``RuntimeError`` subclasses whose message is ClickHouse's own text,
``Code: 60. DB::Exception: ... (UNKNOWN_TABLE)``, sometimes behind a wrapper prefix
(``Streaming insert append failed: Code: 27. ...``). The code and the symbolic name are parsed
from that text: chDB exposes no structured error code.
"""

from __future__ import annotations

import re
from http import HTTPStatus

# Codes the server raises itself (values from chDB's system.errors).
BAD_ARGUMENTS = 36
NOT_IMPLEMENTED = 48
SYNTAX_ERROR = 62
UNKNOWN_FORMAT = 73
UNKNOWN_COMPRESSION_METHOD = 89
QUERY_IS_TOO_LARGE = 229
CANNOT_DECOMPRESS = 271
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
INVALID_SESSION_TIMEOUT = 374
STD_EXCEPTION = 1001

_NAMES = {
    BAD_ARGUMENTS: "BAD_ARGUMENTS",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    SYNTAX_ERROR: "SYNTAX_ERROR",
    UNKNOWN_FORMAT: "UNKNOWN_FORMAT",
    UNKNOWN_COMPRESSION_METHOD: "UNKNOWN_COMPRESSION_METHOD",
    QUERY_IS_TOO_LARGE: "QUERY_IS_TOO_LARGE",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    SESSION_IS_LOCKED: "SESSION_IS_LOCKED",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
    STD_EXCEPTION: "STD_EXCEPTION",
}

# ClickHouse's exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), by name.
_STATUS_BY_NAME: dict[str, HTTPStatus] = {
    "REQUIRED_PASSWORD": HTTPStatus.UNAUTHORIZED,
    **dict.fromkeys(
        ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"),
        HTTPStatus.FORBIDDEN,
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        HTTPStatus.BAD_REQUEST,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        HTTPStatus.NOT_FOUND,
    ),
    "QUERY_IS_TOO_LARGE": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    "NOT_IMPLEMENTED": HTTPStatus.NOT_IMPLEMENTED,
    "SOCKET_TIMEOUT": HTTPStatus.SERVICE_UNAVAILABLE,
    "CANNOT_OPEN_FILE": HTTPStatus.SERVICE_UNAVAILABLE,
    "HTTP_LENGTH_REQUIRED": HTTPStatus.LENGTH_REQUIRED,
    "TIMEOUT_EXCEEDED": HTTPStatus.REQUEST_TIMEOUT,
    "CANNOT_SCHEDULE_TASK": HTTPStatus.SERVICE_UNAVAILABLE,
    "UNSUPPORTED_MEDIA_TYPE": HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
}

_CODE_RE = re.compile(r"Code: (\d+)\. ")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")
_VERSION_TRAILER_RE = re.compile(r"\s*\(version [^)]*\)\s*$")


class ClickHouseError(Exception):
    """An error with ClickHouse's numeric code, symbolic name and message text."""

    def __init__(self, code: int, message: str, name: str | None = None) -> None:
        self.code = code
        self.name = name or _NAMES.get(code, "")
        self.message = message
        super().__init__(self.text)

    @property
    def text(self) -> str:
        """``Code: N. DB::Exception: message. (NAME)``, as ClickHouse words it."""
        if self.message.startswith("Code: "):
            return self.message
        suffix = f" ({self.name})" if self.name else ""
        return f"Code: {self.code}. DB::Exception: {self.message}{suffix}"

    @property
    def http_status(self) -> int:
        """The HTTP status ClickHouse answers with for this code."""
        return int(_STATUS_BY_NAME.get(self.name, HTTPStatus.INTERNAL_SERVER_ERROR))

    @classmethod
    def from_exception(cls, exc: BaseException) -> ClickHouseError:
        """Wrap an engine exception, keeping ClickHouse's code, name and text."""
        if isinstance(exc, ClickHouseError):
            return exc
        text = str(exc).strip()
        start = text.find("Code: ")
        if start >= 0:
            text = _VERSION_TRAILER_RE.sub("", text[start:])
        match = _CODE_RE.match(text)
        if not match:
            return cls(STD_EXCEPTION, f"{type(exc).__name__}: {text}")
        name = _NAME_RE.search(text)
        return cls(int(match.group(1)), text, name.group(1) if name else None)
