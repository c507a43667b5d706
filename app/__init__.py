"""Community waste-reduction passbook service (减废存折)."""
