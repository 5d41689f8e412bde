"""Exchange secrets at rest: Fernet tokens through MultiFernet, newest key first.

Encryption always uses the newest key; decryption tries each key in turn, so a key can be added in
front (and `tradebot rotate-keys` run) before the old one is retired.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretDecryptError(Exception):
    """No configured key opens this ciphertext (a retired key, or tampering)."""


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is required")
        self._fernets = [Fernet(k.encode()) for k in keys]
        self._multi = MultiFernet(self._fernets)

    def encrypt(self, plaintext: str) -> bytes:
        return self._multi.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._multi.decrypt(bytes(ciphertext)).decode()
        except InvalidToken as e:
            raise SecretDecryptError("no configured Fernet key decrypts this value") from e

    def rotate(self, ciphertext: bytes) -> bytes:
        """The same plaintext encrypted under the newest key (its original timestamp is kept)."""
        try:
            return self._multi.rotate(bytes(ciphertext))
        except InvalidToken as e:
            raise SecretDecryptError("no configured Fernet key decrypts this value") from e

    def is_current(self, ciphertext: bytes) -> bool:
        """Whether the newest key already opens it (rotation can skip it)."""
        try:
            self._fernets[0].decrypt(bytes(ciphertext))
        except InvalidToken:
            return False
        return True
