"""Bin-side check-ins (桶边督导): drop-off stations, drop-off windows, scans single and in offline batches."""
