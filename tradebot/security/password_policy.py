"""What a new password must not be (NIST SP 800-63B 5.1.1.2): common, the account's email, one character.

The rule, the same for every new password (register, change, reset); a login is never re-checked:
- 8–1024 characters (checked where the request is parsed);
- not among the 100,000 most common passwords (`data/common-passwords-100k.txt.gz`, SecLists, see the
  README beside it), compared case-insensitively (`str.casefold`): "Password" and "PASSWORD" are as
  guessable as "password", and guessing tools try those variants first;
- not the account's email or the email's local part, case-insensitively;
- not one character repeated ("        ", "aaaaaaaa"): NIST's "repetitive characters" example; the
  list does not hold every such string.

The list is read once (about 40,000 entries of 8 characters or more are kept, the only ones a new
password can match) into a frozenset; a check is a few hash lookups, cheap enough for the event loop.
Load it with `load_common_passwords` in a thread at start-up, not on the loop.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib import resources

from tradebot.security.passwords import MIN_PASSWORD_CHARS

COMMON_PASSWORDS_FILE = "common-passwords-100k.txt.gz"


class WeakPassword(Exception):
    """A new password the policy refuses; `reason` is shown to the user, naming `field`, the input
    that carried the password (a 422 names the body field)."""

    def __init__(self, reason: str, field: str = "password") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def load_common_passwords() -> frozenset[str]:
    """The bundled list, case-folded, without entries shorter than any acceptable password (blocking I/O)."""
    raw = resources.files("tradebot.security").joinpath("data", COMMON_PASSWORDS_FILE).read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").splitlines()
    return frozenset(line.casefold() for line in lines if len(line) >= MIN_PASSWORD_CHARS)


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    common: frozenset[str]

    def check(self, password: str, email: str, *, field: str = "password") -> None:
        """Raise WeakPassword (naming `field`) if `password` may not become the password of the
        account `email`."""
        folded = password.casefold()
        if len(set(password)) == 1:
            raise WeakPassword("must not be a single character repeated", field)
        if folded in self.common:
            raise WeakPassword("is one of the most common passwords; choose a less guessable one", field)
        email_folded = email.casefold()
        if folded in (email_folded, email_folded.rpartition("@")[0]):
            raise WeakPassword("must not be the email address or its part before the @", field)
