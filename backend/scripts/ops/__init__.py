"""Stable operations entries (run_*.sh launchers and Python twins); see ../registry.json."""
