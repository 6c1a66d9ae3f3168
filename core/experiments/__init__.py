"""Experiments on a model: gradient / activation edits, channel importance, compare, sanity."""
