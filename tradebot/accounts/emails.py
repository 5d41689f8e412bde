"""Email addresses: normalised (trimmed, lower-case) and checked with a deliberately plain rule."""

from __future__ import annotations

import re

MAX_EMAIL_CHARS = 254  # RFC 5321's path limit minus the angle brackets

_LOCAL = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL = re.compile(rf"^{_LOCAL}@(?:{_LABEL}\.)+[a-z]{{2,63}}")


# For the OpenAPI document: a stricter pattern than the check above (every address it describes is
# accepted), so schema-driven clients and fuzzers generate addresses the API takes.
EMAIL_SCHEMA_PATTERN = (
    r"^[A-Za-z0-9_%+-]{1,30}(\.[A-Za-z0-9_%+-]{1,30})?"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\.){1,3}[A-Za-z]{2,20}$"
)


def normalize_email(raw: str) -> str:
    """The canonical form, or ValueError naming what is wrong (never echoing the input)."""
    email = raw.strip().lower()
    if not email:
        raise ValueError("must not be empty")
    if len(email) > MAX_EMAIL_CHARS:
        raise ValueError(f"must be at most {MAX_EMAIL_CHARS} characters")
    local = email.partition("@")[0]
    if len(local) > 64 or not _EMAIL.fullmatch(email):
        raise ValueError("is not a valid email address")
    return email
