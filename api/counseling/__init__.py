"""Counseling sessions and attendance."""
