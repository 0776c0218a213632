"""Medication regimens, dose logs, missed doses and adherence."""
