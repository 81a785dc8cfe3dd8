"""Tests of the Textual app (a package, so its conftest does not shadow tests/conftest.py)."""
