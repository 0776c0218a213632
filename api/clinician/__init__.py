"""The clinician API: roster, per-patient reads through the consent gate, COWS assessments."""
