"""LFW 10-fold accuracy of ``dlib`` (ONNX Runtime) and ``dlib-native`` on all 6,000 pairs.

Usage: ``python bench/backend_agreement.py [--root DIR] [--json]``

Embeddings go through the usual cache, so a second run only reads; the first run of
``dlib-native`` takes about 20 minutes on 2 cores (dlib-bin embeds ~7 faces/s).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from xfv.datasets import read_protocol
from xfv.models import get_model
from xfv.pipeline.evaluate import evaluate

DEFAULT_LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pairs = read_protocol("lfw", args.root)
    reports = {name: evaluate(pairs, get_model(name), "lfw-funneled") for name in ("dlib", "dlib-native")}
    result = {
        "n_pairs": len(pairs),
        "accuracy": {name: report.accuracy_mean for name, report in reports.items()},
        "max_distance_difference": float(np.abs(reports["dlib"].distances - reports["dlib-native"].distances).max()),
        "same_to_three_decimals": len({round(r.accuracy_mean, 3) for r in reports.values()}) == 1,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, accuracy in result["accuracy"].items():
        print(f"{name:12s} LFW accuracy {accuracy:.5f}")
    print(
        f"largest distance difference {result['max_distance_difference']:.2e}; "
        f"identical to three decimals: {result['same_to_three_decimals']}"
    )


if __name__ == "__main__":
    main()
