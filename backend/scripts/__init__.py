"""Entry points only (DESIGN.md): stable paths, deprecated aliases, legacy/ implementations.

A package so import-linter can see the fence; `wordloom` never imports from here.
"""
