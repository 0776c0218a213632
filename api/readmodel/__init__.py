"""The rows summaries and alerts read: one read model over checkins, COWS, medications,
counseling and alerts."""
