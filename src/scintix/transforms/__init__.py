"""Deterministic preprocessing (pure functions) and seeded random augmentation."""
