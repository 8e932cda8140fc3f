"""`python -m training {bootstrap,finetune,sbert,eval,verify}`: build, evaluate and check OhLoRA's models."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from engine.runtime.presets import ROLES, SBERT_TASKS, Preset, get_preset
from training.reproducible import TRAIN_THREADS

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_DIFFERENT = 2  # verify: the files or the two manifests differ


class TrainingError(Exception):
    """An expected failure (missing base weights, bad arguments) shown as one line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("--artifacts", type=Path, default=None, help="artifacts root folder")
    sub = parser.add_subparsers(dest="command", required=True)

    boot = sub.add_parser("bootstrap", help="build the embedded tiny preset from data/")
    boot.add_argument("--seed", type=int, default=0)
    boot.add_argument("--force", action="store_true", help="rebuild every stage")
    boot.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"torch threads while training (default: the manifest's, else {TRAIN_THREADS}); "
        "results depend on it",
    )

    ft = sub.add_parser("finetune", help="LoRA fine-tuning of one role")
    ft.add_argument("--role", choices=ROLES, required=True)
    ft.add_argument("--preset", choices=("tiny", "production"), default="tiny")
    ft.add_argument("--epochs", type=int, default=None)
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument(
        "--threads", type=int, default=TRAIN_THREADS, help="torch threads while training"
    )

    sb = sub.add_parser("sbert", help="train an S-BERT model")
    sb.add_argument("--task", choices=SBERT_TASKS, required=True)
    sb.add_argument("--preset", choices=("tiny", "production"), default="tiny")
    sb.add_argument("--seed", type=int, default=0)
    sb.add_argument(
        "--objective",
        choices=("mse", "softmax"),
        default=None,
        help="ethics loss: upstream's squared error or the softmax over the four cosines "
        "(default: the base's, softmax on the tiny preset's USE base)",
    )
    sb.add_argument(
        "--threads", type=int, default=TRAIN_THREADS, help="torch threads while training"
    )

    ev = sub.add_parser("eval", help="evaluate all models and write a Markdown report")
    ev.add_argument("--preset", choices=("tiny", "production"), default="tiny")
    ev.add_argument("--json", action="store_true", help="end with one JSON object")
    ev.add_argument(
        "--ethics-csv",
        type=Path,
        default=None,
        help="CSV with columns user_prompt,category instead of the test split",
    )
    ev.add_argument("--limit", type=int, default=None, help="evaluate only N valid prompts")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument(
        "--sbert-seeds",
        default=None,
        help="also train both S-BERTs once per seed (e.g. 0,1,2) outside the preset folder and "
        "report each headline number's mean and range",
    )
    ev.add_argument(
        "--lm-seeds",
        default=None,
        help="also fine-tune the four LoRAs once per seed (e.g. 0,1,2) outside the preset "
        "folder, on its bases, and report each role's headline numbers' mean and range",
    )

    fb = sub.add_parser(
        "export-feedback",
        help="write (final input, chosen, rejected) pairs and ratings as JSONL",
    )
    fb.add_argument("out", type=Path, help="the JSONL file to write")
    fb.add_argument(
        "--database",
        default=None,
        help="database URL (default: the service's, from DATABASE_URL / OHLORA_DATA_DIR)",
    )

    ve = sub.add_parser(
        "verify", help="check built files against the manifest, or compare two builds"
    )
    ve.add_argument("--preset", choices=("tiny", "production"), default="tiny")
    ve.add_argument(
        "--against",
        type=Path,
        default=None,
        metavar="MANIFEST",
        help="another build's manifest.json: compare the two builds' checksums",
    )
    return parser


def _verify(preset: Preset, against: Path | None) -> int:
    """Print what differs; `EXIT_DIFFERENT` when anything does."""
    from training.bootstrap import verify
    from training.manifest import Manifest, compare_checksums

    mine = Manifest.load(preset.manifest_path)
    if mine is None:
        raise TrainingError(f"no readable manifest at {preset.manifest_path}")
    if against is None:
        result = verify(preset, mine)
        for difference in result.differences:
            print(difference)
        if result.unrecorded:
            print(
                f"no checksums recorded for {', '.join(result.unrecorded)} (built by an older "
                "version; `python -m training bootstrap` adds them)"
            )
        if not result.complete:
            print("the build is not complete")
        print(
            f"{'ok' if result.ok else 'DIFFERENT'}: {result.files} files listed, "
            f"{len(result.differences)} differ"
        )
        return EXIT_OK if result.ok else EXIT_DIFFERENT
    theirs = Manifest.load(against)
    if theirs is None:
        raise TrainingError(f"no readable manifest at {against}")
    differences = compare_checksums(theirs.checksums, mine.checksums)
    for difference in differences:
        print(difference)
    for note in mine.settings_differences(theirs):
        print(f"note: {note}")
    unrecorded = sorted(set(mine.unrecorded_stages) | set(theirs.unrecorded_stages))
    if unrecorded:
        print(f"no checksums recorded for {', '.join(unrecorded)} in one of the builds")
    same = not differences and not unrecorded and bool(mine.checksums)
    print(
        f"{'same' if same else 'DIFFERENT'}: {len(mine.checksums)} files here, "
        f"{len(theirs.checksums)} there, {len(differences)} differ"
    )
    return EXIT_OK if same else EXIT_DIFFERENT


def _run(args: argparse.Namespace) -> int:
    if args.command == "export-feedback":
        from training.feedback_export import run

        return run(args.out, args.database)
    preset = get_preset(getattr(args, "preset", "tiny"), args.artifacts)
    if args.command == "bootstrap":
        from training.bootstrap import bootstrap

        manifest = bootstrap(preset, seed=args.seed, force=args.force, threads=args.threads)
        total = sum(s.seconds for s in manifest.stages.values())
        print(
            f"built {preset.artifacts} in {total:.0f} s of stage time, "
            f"{manifest.artifact_bytes / 1e6:.1f} MB"
        )
    elif args.command == "finetune":
        from training.finetune import finetune_role
        from training.reproducible import reproducible

        with reproducible(args.seed, args.threads):
            summary = finetune_role(preset, args.role, epochs=args.epochs, seed=args.seed)
        print(json.dumps(summary))
    elif args.command == "sbert":
        from training.reproducible import reproducible
        from training.sbert import EthicsObjective, train_ethics, train_memory

        if args.objective and args.task != "ethics":
            raise TrainingError("--objective applies to --task ethics only")
        with reproducible(args.seed, args.threads):
            if args.task == "ethics":
                objective = EthicsObjective(args.objective) if args.objective else None
                summary = train_ethics(preset, seed=args.seed, objective=objective)
            else:
                summary = train_memory(preset, seed=args.seed)
        print(json.dumps(summary, ensure_ascii=False))
    elif args.command == "verify":
        return _verify(preset, args.against)
    elif args.command == "eval":
        from training.report import run_evaluation

        metrics = run_evaluation(
            preset, ethics_csv=args.ethics_csv, limit=args.limit, seed=args.seed
        )
        if args.sbert_seeds:
            from training.eval_sbert import seed_spread, spread_lines

            seeds = tuple(int(s) for s in args.sbert_seeds.split(","))
            work = preset.artifacts.parent / f"{preset.name}_seed_spread"
            print("\n".join(spread_lines(seed_spread(preset, work, seeds))))
        if args.lm_seeds:
            from training.eval_lm import lm_seed_spread
            from training.eval_sbert import spread_lines

            seeds = tuple(int(s) for s in args.lm_seeds.split(","))
            work = preset.artifacts.parent / f"{preset.name}_lm_seed_spread"
            result = lm_seed_spread(preset, work, seeds)
            print("\n".join(spread_lines(result, "LLM roles' headline numbers")))
        if args.json:
            print(json.dumps(metrics, ensure_ascii=False))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    from engine.runtime.lm import MissingAdapter, MissingBaseModel

    try:
        return _run(args)
    except (TrainingError, FileNotFoundError, MissingBaseModel, MissingAdapter) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
