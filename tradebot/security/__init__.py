"""Passwords (argon2id), access tokens (pyjwt), secrets at rest (Fernet), rate limits, mail."""
