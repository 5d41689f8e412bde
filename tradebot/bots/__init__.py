"""Bots as users see them: settings, state, orders and trades (the runtime trades them)."""
