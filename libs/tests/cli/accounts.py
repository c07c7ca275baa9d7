"""Accounts the fake Arcade Cloud knows, for the `arcade` tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Account:
    key: str
    principal: str
    email: str


ALPHA = Account("arc_key_alpha_0123456789", "prn_alpha", "alpha@example.com")
BRAVO = Account("arc_key_bravo_9876543210", "prn_bravo", "bravo@example.com")
