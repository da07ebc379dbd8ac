"""Several models: the first request to a cold model, a warm switch between two loaded ones, RSS per loaded model.

Three seeded random-weight checkpoints in rfdetr's format (tests/support/checkpoints.py: two K=17, one K=5) behind
the app's :class:`~rfdetr_demo.models.registry.ModelRegistry` (torch engine, CPU). Per round, on one COCO photo:

* baseline: a warm request to model A again (same model as the request before);
* warm switch: a request to B right after one to A, both loaded (ratio to the baseline: what switching costs);
* cold: a request to a model that is not loaded (load + first inference), with ``--max-loaded-models 2`` so the
  least recently used one is unloaded to make room (ratio to the baseline).

RSS (``/proc/self/status`` VmRSS) is read after each model is loaded (at most 3 loaded), then after an unload.
Medians over ``--rounds``; the machine is shared, so ratios measured in the same run are what to compare.

Usage: python -m bench.bench_models [--resolution 288] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from bench.machine import describe
from rfdetr_demo.models.loading import ModelSpec, load_rfdetr
from rfdetr_demo.models.malloc_trim import release_freed_memory
from rfdetr_demo.models.registry import ModelRegistry
from tests.support.checkpoints import write_seeded_checkpoint

PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco" / "000000196141.jpg"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resolution", type=int, default=288)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            "a": write_seeded_checkpoint(Path(tmp) / "a.pth", 1, resolution=args.resolution),
            "b": write_seeded_checkpoint(Path(tmp) / "b.pth", 2, resolution=args.resolution),
            "hand": write_seeded_checkpoint(Path(tmp) / "hand.pth", 3, num_keypoints=5, resolution=args.resolution),
        }
        gc.collect()
        release_freed_memory()
        loaders = [
            (n, partial(load_rfdetr, ModelSpec(checkpoint=str(p), device="cpu", engine="torch")))
            for n, p in paths.items()
        ]

        def ask(registry: ModelRegistry, name: str) -> None:
            registry.service(name).predict(rgb, threshold=0.5, resolution=args.resolution)

        # RSS per loaded model (up to three loaded at once)
        registry = ModelRegistry(loaders, max_loaded=3)
        rss = [rss_mb()]
        for name in paths:
            ask(registry, name)
            gc.collect()
            release_freed_memory()
            rss.append(rss_mb())
        with registry._lock:  # unload b and hand, as the LRU rule does: what an unload gives back
            for name in ("b", "hand"):
                registry._unload(name)
        rss.append(rss_mb())
        del registry
        gc.collect()
        release_freed_memory()

        registry = ModelRegistry(loaders, max_loaded=2)
        ask(registry, "a")
        ask(registry, "b")
        base, switch, cold = [], [], []
        for _ in range(args.rounds):
            ask(registry, "a")
            base.append(timed(lambda: ask(registry, "a")))
            switch.append(timed(lambda: ask(registry, "b")))  # b is loaded: a warm switch
            # hand is not loaded: load + first inference (a, the least recently used, makes room)
            cold.append(timed(lambda: ask(registry, "hand")))
            ask(registry, "a")  # reload a and b (each unloads the least recently used): the next round starts
            ask(registry, "b")  # with a and b loaded again
    med = {k: statistics.median(v) for k, v in (("base", base), ("switch", switch), ("cold", cold))}
    print(f"machine: {describe()}")
    print(f"resolution {args.resolution}², torch engine, {args.rounds} rounds, medians")
    print(f"warm request, same model:     {med['base'] * 1000:8.0f} ms (1.00x)")
    print(f"warm switch to a loaded model:{med['switch'] * 1000:8.0f} ms ({med['switch'] / med['base']:.2f}x)")
    print(f"first request to a cold model:{med['cold'] * 1000:8.0f} ms ({med['cold'] / med['base']:.2f}x)")
    steps = [f"{rss[i + 1] - rss[i]:+.0f}" for i in range(3)]
    print(f"RSS: start {rss[0]:.0f} MB; after loading 1, 2, 3 models: {', '.join(f'{r:.0f}' for r in rss[1:4])} MB")
    print(
        f"RSS per loaded model (MB): {', '.join(steps)}; after unloading two: {rss[4]:.0f} MB ({rss[4] - rss[3]:+.0f})"
    )


if __name__ == "__main__":
    main()
