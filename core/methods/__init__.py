"""Explanation methods: the CAM registry (``cam``), attributions, faithfulness metrics."""
