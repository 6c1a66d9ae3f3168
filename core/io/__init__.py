"""Files: figure and array export, sessions, the generated hook code."""
