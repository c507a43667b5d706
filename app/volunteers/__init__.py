"""Volunteers (志愿者): teams, shifts at a station or recycling day with sign-in and sign-out, hours."""
