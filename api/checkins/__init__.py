"""Scored symptom check-ins a patient records, offline-safe."""
