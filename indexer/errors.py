"""Domain errors: what the product refuses or cannot find, without any transport attached.

The HTTP app maps them to status codes in one place (service/app.py); the CLI prints the message and exits
non-zero. Each message is written for the user.
"""

from __future__ import annotations


class SheetidError(Exception):
    """Base of every refusal the user should see as a message, not as a crash."""


class BadInput(SheetidError, ValueError):
    """Input we refuse: a corrupt or oversized PDF, a recording we cannot use."""


class UnsupportedType(BadInput):
    """The file is not of a kind we read (not a PDF, not audio)."""


class BadAudio(BadInput):
    """A readable recording we refuse: too long, too short, silent, too many channels."""


class TooLarge(BadInput):
    """An upload over the size limit."""


class NotFound(SheetidError, LookupError):
    """No such piece, page or job."""


class NotIndexed(NotFound):
    """The piece has no vectors for the loaded model (deleted, or waiting for `sheetid reindex`)."""


class TimedOut(SheetidError):
    """A query ran past the time limit."""
