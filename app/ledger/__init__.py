"""The points ledger (积分账本): double-entry, append-only, idempotent; the one writer of points."""
