"""Programmes changing hands (issue 21): an organisation's communities, staff and reports passed to another
organisation or the street office in one audited step; a community's whole record as one archive."""
