"""Push device registrations (POST/DELETE /v1/devices)."""
