"""Dagster only: assets, checks, sensors, schedule and resources wiring the domain code."""
