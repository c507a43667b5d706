"""Demo and benchmark data: a realistic street of communities, built deterministically from a seed."""
