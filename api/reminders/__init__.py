"""Reminder rules: check-in, medication and counseling reminders at local times."""
