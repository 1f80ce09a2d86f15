"""``vsa-vision calibrate``: fit a checkpoint's abstention and calibration rules and write them into it."""

from __future__ import annotations

import argparse
import json
import os

from .common import add_device, add_threads, apply_threads, positive, seed
from .outputs import check_file, check_folder, same_path
from .vision import add_checkpoint, add_head, load_pipeline


def register(sub) -> None:
    c = sub.add_parser("calibrate", help="fit when to abstain (known) and calibrated probabilities on degraded "
                                         "scenes and foreign inputs; write them into a checkpoint")
    add_checkpoint(c)
    add_head(c)
    c.add_argument("--out", default=None, help="the checkpoint to write (.safetensors), the model with its rules")
    c.add_argument("--measure-only", dest="measure_only", action="store_true",
                   help="measure the checkpoint's own rules on the fresh draws of --eval-*; fit and write nothing")
    c.add_argument("--data", default=None, metavar="DATASET",
                   help="fit on this dataset's val images and measure on its test images (a user's own, from "
                        "'vsa-vision data import'), instead of renders of the schema")
    c.add_argument("--scenes", type=positive, default=6000, help="calibration scenes, clean and degraded (6000)")
    c.add_argument("--foreign", type=positive, default=3000, help="calibration foreign inputs (3000)")
    c.add_argument("--seed", type=seed, default=7, help="seed of the calibration draws (7)")
    c.add_argument("--eval-scenes", dest="eval_scenes", type=positive, default=3000,
                   help="fresh test scenes to measure the rules on (3000)")
    c.add_argument("--eval-foreign", dest="eval_foreign", type=positive, default=1400,
                   help="fresh foreign inputs to measure the rules on (1400)")
    c.add_argument("--eval-seed", dest="eval_seed", type=seed, default=101,
                   help="seed of the measurement draws (101)")
    c.add_argument("--report", default=None, help="also write the full measurement here (JSON)")
    c.add_argument("--figures", default=None, metavar="PREFIX",
                   help="write PREFIX-roc.png and PREFIX-reliability.png")
    c.add_argument("--known-from", dest="known_from", choices=["scene", "right"], default="scene",
                   help="what 'known' learns to accept against foreign inputs: every calibration scene (default), "
                        "or the scenes the model reads right (for a model that misreads degraded scenes)")
    c.add_argument("--batch-size", dest="batch_size", type=positive, default=256)
    add_device(c)
    add_threads(c)
    c.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    """Refuse a bad combination of options before anything is loaded."""
    if args.measure_only and args.out is not None:
        raise ValueError("--out: nothing is written with --measure-only")
    if not args.measure_only and args.out is None:
        raise ValueError("--out: required (the checkpoint to write), unless --measure-only")
    if args.out is not None and not args.out.endswith(".safetensors"):
        raise ValueError(f"--out: expected a .safetensors path, got {args.out!r}")
    if args.seed == args.eval_seed:
        raise ValueError("--eval-seed: must differ from --seed (the rules are measured on fresh draws)")
    if args.out is not None:
        check_file(args.out, "--out")
    if args.report is not None:
        check_file(args.report, "--report")
    if args.figures is not None:
        if not args.figures:
            raise ValueError("--figures: an empty prefix")
        check_folder(os.path.dirname(os.path.abspath(args.figures)), "--figures")
    if args.checkpoint and args.report and same_path(args.checkpoint, args.report):
        raise ValueError("--report: is the input checkpoint")
    if args.data is not None and not os.path.isdir(args.data):
        raise FileNotFoundError(f"--data: no such dataset folder {args.data!r}")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import export_model
    from ..io import atomic_write
    from ..trust_fit import evaluate_trust, fit_trust, summary, trust_figures

    _check_args(args)
    apply_threads(args)
    pipe = load_pipeline(args)
    model = pipe.model
    where = f"the val images of {args.data}" if args.data else f"{args.scenes} scenes"
    if args.measure_only and model.trust is None:
        raise ValueError(f"--measure-only: the checkpoint {args.checkpoint or 'default'!r} has no fitted rules")
    if args.measure_only and args.eval_seed == model.trust.get("seed"):
        raise ValueError(f"--eval-seed: {args.eval_seed} is the seed the stored rules were fitted on; measure "
                         "them on fresh draws (another seed)")
    if not args.measure_only:
        print(f"fitting on {where} and {args.foreign} foreign inputs (seed {args.seed}) ...")
        model.trust = fit_trust(model, method=args.method, n_scenes=args.scenes, n_foreign=args.foreign,
                                seed=args.seed, batch_size=args.batch_size, data_dir=args.data,
                                known_from=args.known_from)
    print(f"measuring on {args.eval_scenes} fresh scenes and {args.eval_foreign} foreign inputs "
          f"(seed {args.eval_seed}) ...")
    report = evaluate_trust(model, method=args.method, n_scenes=args.eval_scenes, n_foreign=args.eval_foreign,
                            seed=args.eval_seed, batch_size=args.batch_size, data_dir=args.data)
    print(json.dumps(summary(report), indent=2))
    if args.report is not None:
        atomic_write(args.report, lambda f: f.write(json.dumps(report) + "\n"))
    if args.figures is not None:
        trust_figures(report, f"{args.figures}-roc.png", f"{args.figures}-reliability.png",
                      title=model.schema.name)
    if args.measure_only:
        return 0
    model.trust["report"] = summary(report)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    print(f"wrote {export_model(model, args.out)}")
    return 0
