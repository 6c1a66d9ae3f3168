"""The engine: module tree, hook sessions, targets and output kinds, the probe, runtime guards."""
