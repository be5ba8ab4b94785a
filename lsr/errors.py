"""The one exception type users see.

Every error caused by bad input (a missing file, a malformed line, an unknown method, k <= 0, ...)
raises :class:`LsrError` with a one-line message; the CLI prints it as ``lsr: error: <message>`` and
exits with status 2, never with a traceback.
"""

from __future__ import annotations


class LsrError(ValueError):
    """Bad input or an unusable file: the message says what and where, in one line."""
