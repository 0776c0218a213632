"""Alerts clinicians see about consented patients (raised by the summaries job)."""
