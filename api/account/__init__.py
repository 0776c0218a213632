"""The account: profile, password, erasure of the person's own data."""
