"""Fernet secrets at rest: newest key encrypts, every key decrypts, rotation moves to the newest."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from tradebot.security.secrets_box import SecretBox, SecretDecryptError


def test_encrypt_decrypt_and_rotate() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = SecretBox([old])
    ct = before.encrypt("my secret")
    assert b"my secret" not in ct
    assert before.decrypt(ct) == "my secret"
    both = SecretBox([new, old])
    assert both.decrypt(ct) == "my secret"
    assert not both.is_current(ct)
    rotated = both.rotate(ct)
    assert both.is_current(rotated)
    assert SecretBox([new]).decrypt(rotated) == "my secret"
    assert SecretBox([new]).decrypt(both.encrypt("x")) == "x"  # newest key encrypts


def test_unknown_key_or_tampering_is_an_error_without_the_plaintext() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    ct = bytearray(box.encrypt("my secret"))
    ct[-5] ^= 1
    with pytest.raises(SecretDecryptError):
        box.decrypt(bytes(ct))
    with pytest.raises(SecretDecryptError):
        SecretBox([Fernet.generate_key().decode()]).decrypt(box.encrypt("my secret"))
    with pytest.raises(ValueError):
        SecretBox([])
