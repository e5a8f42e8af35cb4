"""``xfv make-xqlfw-synth``: XQLFW's pair list on LFW images degraded by xfv's documented recipe."""

from __future__ import annotations

import argparse
from pathlib import Path

from xfv.cli.core import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    make = subparsers.add_parser(
        "make-xqlfw-synth",
        help="write XQLFW pairs on LFW images degraded by xfv (deterministic, resumable; not the official XQLFW images)",
    )
    make.add_argument("--lfw", type=Path, required=True, help="the LFW folder (deep-funneled images)")
    make.add_argument("--pairs", type=Path, required=True, help="the XQLFW pair list (xqlfw_pairs.txt)")
    make.add_argument("--out", type=Path, required=True, help="the folder to write (new, empty, or this seed's)")
    make.add_argument("--seed", type=int, default=0, help="seed of every per-image draw (default 0)")
    make.add_argument("--quiet", action="store_true", help="no progress bars")
    make.add_argument("--json", action="store_true", help="print the manifest's summary as JSON")
    make.set_defaults(func=run_make_xqlfw_synth)


def run_make_xqlfw_synth(args: argparse.Namespace) -> int:
    from xfv.pipeline.degrade import make_xqlfw_synth

    report = make_xqlfw_synth(args.lfw, args.pairs, args.out, args.seed, progress=not args.quiet)
    if args.json:
        print_json(
            {
                "out": str(report.out),
                "seed": report.header.seed,
                "recipe": report.header.recipe,
                "written": report.written,
                **report.summary,
            }
        )
        return 0
    summary = report.summary
    actions = summary["actions"]
    state = f"wrote {report.written} image(s)" if report.written else "already complete, verified, nothing written"
    print(f"{report.header.describe()} in {report.out}: {state}")
    print(
        f"  {summary['images']} images: {actions['degraded']} degraded (scale 2/4/8: "
        f"{'/'.join(str(n) for n in summary['scales'].values())}), {actions['kept']} kept, "
        f"{actions['kept-poor']} poor already and kept"
    )
    print(
        f"  {summary['pairs']} pairs, {summary['pairs_across_sides']} join a degraded-side and a clean-side image; "
        f"mean quality gap per pair {summary['mean_pair_quality_gap_before']:.3f} -> "
        f"{summary['mean_pair_quality_gap_after']:.3f}"
    )
    print(f"  read it with --protocol xqlfw --root {report.out}")
    return 0
