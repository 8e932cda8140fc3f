"""`python -m training {bootstrap,finetune,sbert,eval}`: build and evaluate OhLoRA's models."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from engine.presets import ROLES, SBERT_TASKS, get_preset  # noqa: E402

EXIT_OK = 0
EXIT_FAILED = 1


class TrainingError(Exception):
    """An expected failure (missing base weights, bad arguments) shown as one line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("--artifacts", type=Path, default=None, help="artifacts root folder")
    sub = parser.add_subparsers(dest="command", required=True)

    boot = sub.add_parser("bootstrap", help="build the embedded tiny preset from data/")
    boot.add_argument("--seed", type=int, default=0)
    boot.add_argument("--force", action="store_true", help="rebuild every stage")

    ft = sub.add_parser("finetune", help="LoRA fine-tuning of one role")
    ft.add_argument("--role", choices=ROLES, required=True)
    ft.add_argument("--preset", choices=("tiny", "production"), default="tiny")
    ft.add_argument("--epochs", type=int, default=None)
    ft.add_argument("--seed", type=int, default=0)

    sb = sub.add_parser("sbert", help="train an S-BERT model")
    sb.add_argument("--task", choices=SBERT_TASKS, required=True)
    sb.add_argument("--preset", choices=("tiny", "production"), default="tiny")
    sb.add_argument("--seed", type=int, default=0)

    ev = sub.add_parser("eval", help="evaluate all models and write a Markdown report")
    ev.add_argument("--preset", choices=("tiny", "production"), default="tiny")
    ev.add_argument("--json", action="store_true", help="end with one JSON object")
    ev.add_argument("--ethics-csv", type=Path, default=None,
                    help="CSV with columns user_prompt,category instead of the test split")
    ev.add_argument("--limit", type=int, default=None, help="evaluate only N valid prompts")
    ev.add_argument("--seed", type=int, default=0)
    return parser


def _run(args: argparse.Namespace) -> int:
    preset = get_preset(getattr(args, "preset", "tiny"), args.artifacts)
    if args.command == "bootstrap":
        from training.bootstrap import bootstrap

        manifest = bootstrap(preset, seed=args.seed, force=args.force)
        total = sum(s.seconds for s in manifest.stages.values())
        print(f"built {preset.artifacts} in {total:.0f} s of stage time, "
              f"{manifest.artifact_bytes / 1e6:.1f} MB")
    elif args.command == "finetune":
        from training.finetune import finetune_role

        print(json.dumps(finetune_role(preset, args.role, epochs=args.epochs, seed=args.seed)))
    elif args.command == "sbert":
        from training.sbert import train_ethics, train_memory

        train = train_ethics if args.task == "ethics" else train_memory
        print(json.dumps(train(preset, seed=args.seed), ensure_ascii=False))
    elif args.command == "eval":
        from training.report import run_evaluation

        metrics = run_evaluation(preset, ethics_csv=args.ethics_csv, limit=args.limit,
                                 seed=args.seed)
        if args.json:
            print(json.dumps(metrics, ensure_ascii=False))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    from engine.lm import MissingAdapter, MissingBaseModel

    try:
        return _run(args)
    except (TrainingError, FileNotFoundError, MissingBaseModel, MissingAdapter) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
