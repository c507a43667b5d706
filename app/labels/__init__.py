"""Door-plate labels: printable PDF sheets of household QR codes."""
