"""Accounts (users, login, tokens, password reset) and users' exchange API keys."""
