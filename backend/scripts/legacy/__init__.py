"""v3 script files kept as implementations of the old commands; no new logic here (the fence)."""
