"""Consents (42 CFR 2.31): signed, immutable, revocable; and the one gate of clinician reads."""
