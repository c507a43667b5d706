"""The audit log: which staff user changed or exported what, when, from which request."""
