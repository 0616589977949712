"""Just enough SQL scanning to route a request: its kind, its FORMAT and inline insert data.

ClickHouse's HTTP interface reads an ``INSERT`` whose data follows the statement in the same
stream (``INSERT INTO t (a, b) FORMAT Native\\n<bytes>`` or ``INSERT INTO t VALUES (1, 2)``).
The engine needs the two apart: the statement opens a streaming insert and the data is
appended to it as it arrives. The scanner works on bytes (a binary payload need not be UTF-8)
and skips string literals, quoted identifiers, comments and heredocs, so a ``FORMAT`` inside
them is never taken for the clause.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

_TOKEN = re.compile(
    rb"""
      (?P<ws>[ \t\n\r\f\v]+)
    | (?P<comment>--[^\n]*|\#[ !][^\n]*|/\*.*?\*/)
    | (?P<string>'(?:[^'\\]|\\.|'')*')
    | (?P<qid>"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`)
    | (?P<heredoc>\$(?P<tag>[A-Za-z0-9_]*)\$.*?\$(?P=tag)\$)
    | (?P<word>[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)
    | (?P<number>[0-9][0-9A-Za-z_.]*)
    | (?P<open>[(\[{])
    | (?P<close>[)\]}])
    | (?P<other>.)
    """,
    re.S | re.X,
)
# A token starting with one of these but not matching its full pattern is cut off by the end
# of the input seen so far.
_OPENERS = (b"'", b'"', b"`", b"/*", b"$")
_WHITESPACE = b" \t\n\r\f\v"
_RESULT_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXPLAIN", "EXISTS", "CHECK", "KILL", "FROM"})


class Incomplete(Exception):
    """More input is needed to decide (raised only while the body is still arriving)."""


@dataclass(frozen=True)
class Statement:
    """What the server needs to know about one SQL statement."""

    kind: str
    """First keyword, upper-cased (``SELECT``, ``INSERT``, ``SET``...); ``SELECT`` for ``(``."""
    second: str = ""
    """Second keyword, upper-cased (tells ``CREATE TEMPORARY TABLE`` apart)."""
    output_format: str | None = None
    """The explicit ``FORMAT`` of a statement that returns rows, canonically spelt."""
    insert_head: bytes | None = None
    """For an ``INSERT`` with inline data: the statement without ``FORMAT x`` / ``VALUES``."""
    insert_format: str | None = None
    """For an ``INSERT`` with inline data: the input format (``Values`` for ``VALUES``)."""
    data_offset: int = 0
    """For an ``INSERT`` with inline data: where the data starts in the scanned bytes."""

    @property
    def has_inline_data(self) -> bool:
        return self.insert_format is not None

    @property
    def returns_rows(self) -> bool:
        """Whether ClickHouse would open an output format (and send ``X-ClickHouse-Format``)."""
        return self.kind in _RESULT_KINDS

    @property
    def changes_session(self) -> bool:
        """``SET``, ``USE`` and temporary tables change the connection they run on."""
        return self.kind in ("SET", "USE") or (self.kind in ("CREATE", "DROP") and self.second == "TEMPORARY")


def _tokens(buf: bytes | bytearray, complete: bool) -> Iterator[tuple[str, int, int, int]]:
    """(kind, start, end, depth) of the significant tokens; raises Incomplete at a cut token."""
    pos, depth, size = 0, 0, len(buf)
    while pos < size:
        match = _TOKEN.match(buf, pos)
        assert match is not None  # `other` matches any byte
        kind, end = match.lastgroup or "other", match.end()
        if kind == "tag":  # lastgroup of a heredoc is its inner group
            kind = "heredoc"
        if not complete and (end == size or (kind == "other" and buf.startswith(_OPENERS, pos))):
            raise Incomplete
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(depth - 1, 0)
        if kind not in ("ws", "comment"):
            yield kind, pos, end, depth
        pos = end


def first_keyword(buf: bytes | bytearray, complete: bool) -> str:
    """The statement's first keyword, upper-cased (``SELECT`` for a leading parenthesis)."""
    for kind, start, end, _ in _tokens(buf, complete):
        if kind == "open":
            return "SELECT"
        return buf[start:end].decode("ascii", "replace").upper() if kind == "word" else ""
    if not complete:
        raise Incomplete
    return ""


def _data_start(buf: bytes, pos: int, complete: bool) -> int:
    """ClickHouse's rule: data starts after the first newline, or else after the whitespace."""
    while pos < len(buf):
        byte = buf[pos]
        if byte == 0x0A:
            return pos + 1
        if byte not in _WHITESPACE:
            return pos
        pos += 1
    if not complete:
        raise Incomplete
    return pos


def scan(buf: bytes, complete: bool, formats: Mapping[str, str] | None = None) -> Statement:
    """Scan a statement; ``formats`` maps lower-cased format names to their canonical spelling.

    With ``complete=False`` (the body is still arriving) this raises `Incomplete` until it can
    tell an ``INSERT``'s inline data from its statement; any other statement needs the whole
    input.
    """
    words: list[str] = []
    output_format = None
    pending_format = False
    pending_start = 0
    may_have_format = b"format" in buf.lower()
    for kind, start, end, depth in _tokens(buf, complete):
        word = buf[start:end].decode("ascii", "replace") if kind == "word" else ""
        if not words:
            words.append("SELECT" if kind == "open" else word.upper())
            continue
        if len(words) == 1:
            words.append(word.upper())
            if words[0] != "INSERT" and not may_have_format and complete:
                break
        upper = word.upper()
        if words[0] == "INSERT" and depth == 0 and kind == "word":
            if pending_format:
                name = formats.get(word.lower()) if formats is not None else word
                if name:
                    return Statement(
                        "INSERT",
                        words[1],
                        insert_head=buf[:pending_start].rstrip(),
                        insert_format=name,
                        data_offset=_data_start(buf, end, complete),
                    )
            pending_format = upper == "FORMAT"
            pending_start = start
            if upper == "VALUES":
                return Statement(
                    "INSERT", words[1], insert_head=buf[:start].rstrip(), insert_format="Values", data_offset=end
                )
            if upper in ("SELECT", "WITH", "FROM"):  # INSERT ... SELECT, INSERT ... FROM INFILE
                break
            continue
        if depth == 0 and kind == "word" and pending_format:
            name = formats.get(word.lower()) if formats is not None else word
            if name:
                output_format = name
        pending_format = depth == 0 and upper == "FORMAT"
    # Anything but an INSERT with inline data is a plain statement: it needs the whole input.
    if not complete:
        raise Incomplete
    kind = words[0] if words else ""
    return Statement(kind, words[1] if len(words) > 1 else "", None if kind == "INSERT" else output_format)
