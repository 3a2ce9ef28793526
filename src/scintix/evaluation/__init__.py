"""Metrics (pure functions), bootstrap confidence intervals, thresholds and reports."""
