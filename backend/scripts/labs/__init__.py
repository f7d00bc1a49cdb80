"""Lab drill entries; see ../registry.json."""
