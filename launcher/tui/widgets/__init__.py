"""Widgets of the Berth app, one per module."""
