"""Subcommands that draw figures with the app's renderer (Qt offscreen)."""
