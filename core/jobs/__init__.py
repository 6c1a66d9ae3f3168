"""Long jobs ``fn(reporter, ...)`` that both the app's worker and the CLI run."""
