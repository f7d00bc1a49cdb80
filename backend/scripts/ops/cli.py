"""Stable entry path: forwards to wordloom.cli:main (see backend/scripts/registry.json)."""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))  # backend/
from scripts._forward import forward; forward(__file__)
