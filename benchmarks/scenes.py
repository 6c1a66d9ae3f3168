"""Demo scenes written as a benchmark's image folder (shared by bench_scan and bench_atlas)."""

from __future__ import annotations

from pathlib import Path


def write_scenes(
    images: Path,
    n: int,
    variant: str = "clean",
    masks: Path | None = None,
    seed: int = 1000,
    chunk: int = 250,
) -> Path:
    """``n`` demo scenes of ``variant`` as ``images/<class>/sNNNNN.png`` (96², PNG), and their
    object masks at the same paths below ``masks`` (0/255) when given.

    Made ``chunk`` at a time (chunk ``start`` from seed ``seed + start``), so memory stays
    flat however many images are asked for.
    """
    import numpy as np
    from PIL import Image

    from hookscope.core.demo.scenes import CLASS_NAMES, make_dataset

    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        imgs, labels, ms = make_dataset(variant, k, seed=seed + start)
        for j in range(k):
            rel = f"{CLASS_NAMES[labels[j]]}/s{start + j:05d}.png"
            pairs = [(images, imgs[j])]
            if masks is not None:
                pairs.append((masks, ms[j].astype(np.uint8) * 255))
            for root, arr in pairs:
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(root / rel)
    return images
