"""Reports: read models over the other domains for committees, streets, organisations and funders."""
