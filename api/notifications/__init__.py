"""Notifications and their outbox: dispatching due reminders and delivering them by channel."""
