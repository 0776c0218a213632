"""The clinician dashboard at /clinic/: server-rendered pages on the same services as the API."""
