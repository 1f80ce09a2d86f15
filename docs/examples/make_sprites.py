"""Draw a labelled sprite data set the way a user would bring one: a folder of PNGs plus a metadata.csv.

Each 64x64 RGB image holds one anti-aliased filled shape (triangle, square, pentagon, hexagon, star_4, spoke_4) on a
noisy dark grey-blue background, labelled with six attributes: shape, hue (h0..h7), scale (s0..s3), x and y position
(x0..x7, y0..y7) and angle (a0, a15, a30, a45); every value is jittered inside its bucket. metadata.csv follows the
Hugging Face image-folder convention (file_name relative to the folder) and has a split column (train, val, test,
heldout): the combinations matching a rule in HELDOUT appear only in heldout. Pillow + numpy only, so the images come
from a different renderer than the project's own. Use it with the project like this:

    python docs/examples/make_sprites.py sprites && vsa-vision data import sprites --out datasets/sprites \\
        && python train.py fit --config configs/own.yaml --data.data_dir datasets/sprites
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import math
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE, SUPER, CHUNK = 64, 4, 500  # canvas side, supersampling factor, images per worker task
ATTRS = {
    "shape": ["triangle", "square", "pentagon", "hexagon", "star_4", "spoke_4"],
    "hue": [f"h{i}" for i in range(8)],  # bucket i is centred on i*45 degrees of the hue circle
    "scale": [f"s{i}" for i in range(4)],
    "x": [f"x{i}" for i in range(8)],
    "y": [f"y{i}" for i in range(8)],
    "angle": ["a0", "a15", "a30", "a45"],  # counter-clockwise degrees
}
HELDOUT = [{"shape": "pentagon", "hue": "h5"}, {"shape": "star_4", "angle": "a30"}, {"scale": "s0", "x": "x7"}]
SPLITS = ["train", "val", "test", "heldout"]
RADII = [0.10, 0.13, 0.16, 0.19]  # circumradius as a fraction of the canvas side
POSITIONS = np.linspace(14.0, 50.0, 8)  # centres in pixels: the largest shape, jittered, stays inside the canvas


def _outline(shape: str) -> np.ndarray:
    """The shape's polygon at unit circumradius in its a0 pose, x right and y up."""
    if shape == "star_4":
        t, r = np.radians(np.arange(8) * 45.0 + 90.0), np.where(np.arange(8) % 2 == 0, 1.0, 0.3)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if shape == "spoke_4":  # a plus sign: four arms of half-width w
        w, pts = 0.3, []
        arm = [(w, 1.0), (w, w), (1.0, w)]
        for _ in range(4):
            pts, arm = pts + arm, [(y, -x) for x, y in arm]  # next arm: a quarter turn clockwise
        return np.array(pts) / math.hypot(1.0, w)
    n = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}[shape]
    t = np.radians(np.arange(n) * 360.0 / n + 90.0 + (45.0 if n == 4 else 0.0))  # a vertex up; the square upright
    return np.stack([np.cos(t), np.sin(t)], 1)


OUTLINES = {s: _outline(s) for s in ATTRS["shape"]}


def is_heldout(labels: dict) -> bool:
    return any(all(labels[k] == v for k, v in rule.items()) for rule in HELDOUT)


def sample(rng: np.random.Generator, heldout: bool = False) -> dict:
    """Labels uniform over all combinations, restricted to held-out ones (heldout=True) or to the rest; then jitter."""
    while True:
        labels = {k: v[rng.integers(len(v))] for k, v in ATTRS.items()}
        if is_heldout(labels) == heldout:
            break
    return params(labels, rng)


def params(labels: dict, rng: np.random.Generator) -> dict:
    """The drawing parameters of ``labels``, each value jittered inside its bucket."""
    idx = {k: int(v.lstrip("hsxya")) for k, v in labels.items() if k != "shape"}
    hue = (45.0 * idx["hue"] + rng.uniform(-12.0, 12.0)) % 360.0
    rgb = colorsys.hsv_to_rgb(hue / 360.0, rng.uniform(0.8, 1.0), rng.uniform(0.85, 1.0))
    return {
        "labels": labels,
        "shape": labels["shape"],
        "rgb": tuple(round(255 * c) for c in rgb),
        "radius": SIZE * (RADII[idx["scale"]] + rng.uniform(-0.008, 0.008)),
        "cx": POSITIONS[idx["x"]] + rng.uniform(-1.0, 1.0),
        "cy": POSITIONS[idx["y"]] + rng.uniform(-1.0, 1.0),
        "angle": idx["angle"] + rng.uniform(-3.0, 3.0),
        "bg": tuple(int(c) for c in np.array([20, 22, 30]) + rng.integers(-4, 5, 3)),
    }


def render(labels: dict, seed: int = 0) -> Image.Image:
    """The sprite ``labels`` describe (``{attribute: value}``), drawn as the dataset draws it: a renderer
    for ``Pipeline(..., renderer=render)``, so edits of a model trained on these sprites are drawn exactly."""
    rng = np.random.default_rng([seed, 7])
    return draw(params(dict(labels), rng), rng)


def draw(p: dict, rng: np.random.Generator | None = None, noise: float = 3.0) -> Image.Image:
    """Render sample()'s parameters: polygon at 4x, BOX downsampling, then Gaussian pixel noise if rng is given."""
    a = math.radians(p["angle"])
    xy = OUTLINES[p["shape"]] @ np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]) * p["radius"]
    px = (p["cx"] + xy[:, 0]) * SUPER - 0.5  # continuous canvas coordinates -> PIL pixel-centre coordinates
    py = (p["cy"] - xy[:, 1]) * SUPER - 0.5  # image rows grow downwards
    img = Image.new("RGB", (SIZE * SUPER, SIZE * SUPER), p["bg"])
    ImageDraw.Draw(img).polygon(list(zip(px.tolist(), py.tolist())), fill=p["rgb"])
    img = img.resize((SIZE, SIZE), Image.Resampling.BOX)
    if rng is None or noise <= 0:
        return img
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0.0, noise, (SIZE, SIZE, 3))
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def _chunk(job: tuple) -> list[dict]:
    out, seed, split, start, stop, flat_offset = job
    rows = []
    for i in range(start, stop):
        rng = np.random.default_rng([seed, SPLITS.index(split), i])  # per image: the same whatever the order
        p = sample(rng, heldout=split == "heldout")
        name = f"{split}/{i:06d}.png" if flat_offset is None else f"{flat_offset + i:06d}.png"
        draw(p, rng).save(os.path.join(out, name))
        rows.append({"file_name": name, "split": split, **p["labels"]})
    return rows


def make(out, train=24000, val=1000, test=1000, heldout=1000, seed=0, split=True, overwrite=False, workers=None):
    """Write the images and metadata.csv (last, atomically) into out; return metadata.csv's path.

    split=False writes train+val+test images flat (000000.png, ...), no split column and no held-out images.
    """
    out = Path(out)
    meta = out / "metadata.csv"
    if meta.exists() and not overwrite:
        raise FileExistsError(f"{meta} already exists; pass --overwrite to replace it")
    counts = {"train": train, "val": val, "test": test, "heldout": heldout if split else 0}
    jobs, offset = [], 0
    for name, n in counts.items():
        (out / name if split and n else out).mkdir(parents=True, exist_ok=True)
        jobs += [(str(out), seed, name, s, min(n, s + CHUNK), None if split else offset) for s in range(0, n, CHUNK)]
        offset += n
    if workers is None:  # a pool only pays for itself on big runs
        workers = min(2, os.cpu_count() or 1) if sum(counts.values()) >= 2000 else 1
    if workers > 1 and __name__ in sys.modules:  # pool workers find _chunk by its module's name
        with Pool(workers) as pool:
            chunks = pool.map(_chunk, jobs)
    else:
        chunks = [_chunk(job) for job in jobs]
    tmp = out / ".metadata.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, ["file_name", *(["split"] if split else []), *ATTRS], extrasaction="ignore")
        writer.writeheader()
        for rows in chunks:
            writer.writerows(rows)
    os.replace(tmp, meta)
    return meta


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="folder to write (created if missing)")
    for name, n in (("train", 24000), ("val", 1000), ("test", 1000), ("heldout", 1000)):
        ap.add_argument(f"--{name}", type=int, default=n, help=f"images in the {name} split (default {n})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-split", action="store_true", help="no split column and no held-out images")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing metadata.csv")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: 2 for big runs)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        split, counts = not args.no_split, (args.train, args.val, args.test, args.heldout)
        meta = make(args.out, *counts, seed=args.seed, split=split, overwrite=args.overwrite, workers=args.workers)
    except FileExistsError as e:
        ap.error(str(e))
    n = args.train + args.val + args.test + (0 if args.no_split else args.heldout)
    rules = "no split column" if args.no_split else f"held-out rules: {HELDOUT}"
    print(f"wrote {n} images and {meta} in {time.perf_counter() - t0:.1f}s (seed {args.seed}, {rules})")


if __name__ == "__main__":
    main()
