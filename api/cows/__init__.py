"""A patient's own COWS assessments (HIPAA right of access, GDPR Art. 15): read only.

The model and the clinician's create live in api/clinician; this package only reads them back
to the patient they are about.
"""
