"""The categories of health data a consent can share (42 CFR 2.31(a)(3)).

One vocabulary, kept below the features: consent grants them, the disclosure ledger records them,
alerts and summaries are filed under them. api.consent.models re-exports it.
"""

CATEGORIES = ("symptoms", "medications", "counseling")
