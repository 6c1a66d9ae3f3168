"""Widgets shared by the analysis docks."""
