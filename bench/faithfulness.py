"""Do X-Maps point at what drives the model? Cut-and-paste and deletion on LFW at paper settings.

The checks are :mod:`xfv.pipeline.faithfulness` (its docstring says what they measure); the tests
run the same checks with method 3 and one patch size.

    python bench/faithfulness.py [--pairs 20] [--model dlib] [--patch-sizes 7,14,28] [--stride 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from xfv.method.occlusion import OcclusionSettings
from xfv.models import get_model
from xfv.pipeline.explain import OcclusionEngine
from xfv.pipeline.faithfulness import deletion_rate, paste_rates, select_pairs

DEFAULT_LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW root with pairs.txt and images_deepfunneled")
    parser.add_argument("--pairs", type=int, default=20, help="impostor pairs (paste) and genuine pairs (deletion)")
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--patch-sizes", default="7,14,28")
    parser.add_argument("--stride", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    patch_sizes = tuple(int(p) for p in args.patch_sizes.split(","))
    engine = OcclusionEngine(get_model(args.model), OcclusionSettings(patch_sizes=patch_sizes, stride=args.stride))
    log = (lambda _: None) if args.json else (lambda line: print(line, file=sys.stderr))
    started = time.perf_counter()
    report = {
        "model": args.model,
        "patch_sizes": list(patch_sizes),
        "stride": args.stride,
        "paste": paste_rates(select_pairs(args.lfw, same=False, count=args.pairs), engine, log),
        "deletion": deletion_rate(select_pairs(args.lfw, same=True, count=args.pairs), engine, log),
    }
    report["forward_passes"] = engine.forward_passes
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2) if args.json else _describe(report))
    return 0


def _describe(report: dict) -> str:
    lines = [f"{report['model']}, patch sizes {report['patch_sizes']}, stride {report['stride']}, method 3"]
    for region, rates in report["paste"].items():
        lines.append(
            f"  paste {region:5s}: pointing {rates['pointing_rate']:.0%}, rise {rates['rise_rate']:.0%} "
            f"over {rates['pairs']} impostor pairs"
        )
    deletion = report["deletion"]
    lines.append(
        f"  deletion: map order faster than random on {deletion['faster_rate']:.0%} of {deletion['pairs']} "
        f"genuine pairs (mean distance {deletion['mean_area_map']:.4f} vs {deletion['mean_area_random']:.4f})"
    )
    lines.append(f"  {report['forward_passes']} forward passes in {report['seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
