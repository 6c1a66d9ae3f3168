"""Loading: model specs (``models``), images and their edits (``images``), the input spec."""
