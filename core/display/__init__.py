"""Numbers to pictures without Qt: normalisation, channel mosaics, the snapshot a run shows."""
