"""Labs: failure drills, inserters and probes that produce evidence for the pipeline."""
