"""Roster import: a committee's household spreadsheet (花名册) into the places tables."""
