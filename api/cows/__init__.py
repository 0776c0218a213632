"""COWS assessments: the model, the clinician's create (services.py, called by the clinician's
route) and the patient's own read back (queries.py: HIPAA right of access, GDPR Art. 15).
"""
