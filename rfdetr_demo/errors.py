"""What the visitor can fix (:class:`UserError`) versus our faults (everything else), and how each is reported.

A user error is shown as its own message and logged as one line. Any other exception is a bug or an environment
failure: it is logged with its traceback under a short reference, and the visitor sees one sentence carrying that
reference (never the exception text, which may hold paths, addresses or internals).
"""

from __future__ import annotations

import logging
import secrets

log = logging.getLogger("rfdetr_demo.errors")


class UserError(ValueError):
    """A request the visitor can correct (wrong file, out-of-range option); the message says what to change.

    A ``ValueError`` so callers that validate with ``except ValueError`` keep working.
    """


def log_user_error(exc: BaseException, where: str) -> None:
    """One line, no traceback: an ordinary mistake is not worth a screenful of log. The visitor's message leaves out
    what the library said (it may hold the server's paths or an errno); this line keeps it, as the cause."""
    cause = exc.__cause__
    said = f" (cause {cause.__class__.__name__}: {cause})" if cause is not None else ""
    log.info("%s: refused input (%s): %s%s", where, exc.__class__.__name__, exc, said)


def report_internal(exc: BaseException, where: str) -> str:
    """Log ``exc`` with its traceback under a fresh reference and return the sentence the visitor sees."""
    ref = secrets.token_hex(4)
    log.error("%s: internal error [ref %s]", where, ref, exc_info=exc)
    return f"Something went wrong on the server (reference {ref}); it is still running, please try again."
