"""Clinician summaries (on demand and weekly) and the alert rules behind them."""
