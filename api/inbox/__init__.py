"""The in-app inbox: notifications delivered to the user."""
