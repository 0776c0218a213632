"""Alerts clinicians see about consented patients: the rules (rules.py), their evaluation over
the read model (evaluation.py, run by jobs/alerts.py), and the clinician's list (routes.py)."""
