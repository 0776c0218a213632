"""Demo data and seeding shared by tests and benchmarks (never imported by the app)."""
