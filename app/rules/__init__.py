"""Points rules: what each act earns in a community, versioned by start time, and the daily cap."""
