"""One root for every error swinzoo raises on bad input, and the redaction every message goes through.

The CLI catches :class:`SwinzooError` alone and prints its message (redacted) with a non-zero exit; each
module keeps its own subclass so Python callers can catch what they care about.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

__all__ = ["SwinzooError", "printable", "redact", "redact_url", "one_line", "redact_library_logs"]

# Hugging Face user/org tokens, bearer tokens in echoed headers, and common credential query parameters.
_TOKEN_PATTERNS = [
    re.compile(r"\bhf_[A-Za-z0-9]{8,}\b"),
    re.compile(r"(?i)(authorization\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"),
]
_URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_MAX_MESSAGE = 2000


class SwinzooError(Exception):
    """Root of swinzoo's errors: the message names the file, key, shape or value at fault."""

    def terminal_text(self) -> str:
        """The message as the CLI prints it: redacted, control characters escaped (a value cannot forge a line)."""
        return one_line(str(self))


def redact_url(url: str) -> tuple[str, bool]:
    """``url`` without credentials, query string and fragment (presigned URLs carry their secret there).

    Returns the cleaned URL and whether anything was removed, so callers can record that it was.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url, False
    if not parts.scheme or not parts.netloc:
        return url, False
    netloc = parts.netloc.rpartition("@")[2]  # host and port as written (a bad port stays visible)
    removed = bool(parts.username or parts.password or parts.query or parts.fragment)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")), removed


def redact(text: str) -> str:
    """``text`` with tokens and URL secrets (credentials, query strings) removed: safe to print or store."""
    text = _URL_RE.sub(lambda m: redact_url(m.group(0))[0], str(text))
    for pattern in _TOKEN_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: (m.group(1) or "") + "[REDACTED]", text)
        else:
            text = pattern.sub("[REDACTED]", text)
    return text


# C0 and C1 control characters, DEL, and the Unicode controls that reorder or hide text (bidi overrides,
# zero-width marks, the byte-order mark): a terminal acts on them (ESC sequences retitle windows and clear
# screens, CR and newlines forge lines), so text read from files never reaches it raw.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character written as its escape (``\\x1b``, ``\\n``, ``\\u202e``).

    The one home for text bound for a terminal: checkpoint key names, label names from a Hub repo and image
    file names pass through it. ``keep_newlines`` keeps the line breaks of a message swinzoo composed itself
    (a table); values inside it must be escaped on their own first.
    """
    text = str(text)
    if keep_newlines:
        return "\n".join(_CONTROL_RE.sub(_escape, line) for line in text.split("\n"))
    return _CONTROL_RE.sub(_escape, text)


def one_line(text: str, limit: int = _MAX_MESSAGE) -> str:
    """A message fit for one terminal line: redacted, control characters escaped, cut at ``limit`` characters."""
    text = printable(redact(text))
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more characters)"
    return text


def _redacted_record(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: logging reports it itself when it formats it
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return record

    make.swinzoo_redacts = True  # type: ignore[attr-defined]
    return make


def redact_library_logs() -> None:
    """Every log record of this process (huggingface_hub logs each retry with its full URL, and a URL of
    HF_ENDPOINT may hold a password) goes through :func:`redact` as it is made, whichever handler prints it.
    The CLI installs it; a library caller keeps its own logging."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "swinzoo_redacts", False):
        logging.setLogRecordFactory(_redacted_record(factory))
