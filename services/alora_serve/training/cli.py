"""``alora-serve make-examples``, ``train`` and ``eval``: the argument parsers and what
each command prints."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

MTRAG = "tests/data/mtrag/mtrag_un_reference.jsonl"


def add_commands(commands: Any) -> None:
    from alora_serve.training.mtrag import EXAMPLES

    examples = commands.add_parser(
        "make-examples", help="labelled examples of an intrinsic from MTRAG (train/test split)"
    )
    examples.add_argument("intrinsic", nargs="?", choices=sorted(EXAMPLES), default="answerability")
    examples.add_argument("--mtrag", default=MTRAG, help="MTRAG tasks (JSONL)")
    examples.add_argument("--out", required=True, help="folder for train.jsonl and test.jsonl")
    examples.add_argument("--seed", type=int, default=0)
    examples.set_defaults(run=_make_examples)

    train = commands.add_parser("train", help="train an intrinsic as an aLoRA/LoRA adapter (PEFT)")
    train.add_argument("intrinsic", help="its name (a built-in's io.yaml unless --io-yaml)")
    train.add_argument("--data", required=True, help="examples (JSONL)")
    train.add_argument("--out", required=True, help="adapter library to write it into")
    train.add_argument("--io-yaml", default=None)
    train.add_argument("--model", default=None, help="HF checkpoint dir (default: embedded)")
    train.add_argument("--kind", choices=["alora", "lora"], default="alora")
    for option, kind in (
        ("--epochs", int), ("--rank", int), ("--alpha", int), ("--accumulate", int),
        ("--learning-rate", float), ("--seed", int), ("--max-tokens", int),
    ):  # fmt: skip
        train.add_argument(option, type=kind, default=None, help="(default: TrainConfig's)")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "eval", help="a classifying intrinsic over labelled examples, through a running server"
    )
    evaluate.add_argument("intrinsic")
    evaluate.add_argument("--data", required=True, help="held-out examples (JSONL)")
    evaluate.add_argument(
        "--train-data", required=True, help="training examples (their majority, not augmented)"
    )
    evaluate.add_argument(
        "--labels",
        nargs=2,
        default=None,
        metavar=("POSITIVE", "NEGATIVE"),
        help="for an intrinsic eval does not know (with --base-question)",
    )
    evaluate.add_argument(
        "--base-question",
        default=None,
        help="what the base model is asked after the conversation ({labels} and the "
        "instruction's arguments are filled in)",
    )
    evaluate.add_argument("--target", default="127.0.0.1:50051", help="gRPC host:port")
    evaluate.add_argument("--url", default="http://127.0.0.1:8000", help="HTTP API")
    evaluate.add_argument("--out", required=True, help="folder for eval.json and the plot")
    evaluate.set_defaults(run=_eval)


def _make_examples(args: argparse.Namespace) -> int:
    from alora_serve.training.examples import write_examples
    from alora_serve.training.mtrag import EXAMPLES

    train, test = EXAMPLES[args.intrinsic](Path(args.mtrag), seed=args.seed)
    out = Path(args.out)
    print(f"{write_examples(out / 'train.jsonl', train)} training examples, "
          f"{write_examples(out / 'test.jsonl', test)} held out, in {out}")  # fmt: skip
    return 0


def _train(args: argparse.Namespace) -> int:
    from alora_serve.training.trainer import TrainConfig, train

    chosen = {
        key: value
        for key in ("epochs", "rank", "alpha", "accumulate", "learning_rate", "seed", "max_tokens")
        if (value := getattr(args, key)) is not None
    }
    config = TrainConfig(
        intrinsic=args.intrinsic,
        data=Path(args.data),
        out=Path(args.out),
        io_yaml=Path(args.io_yaml) if args.io_yaml else None,
        model=args.model,
        kind=args.kind,
        **chosen,
    )
    train(config, progress=lambda line: print(line, flush=True))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from alora_serve.training.evaluate import CLASSIFIERS, Classifier, Evaluation, evaluate
    from alora_serve.training.examples import TrainingInputError, read_examples

    if args.labels and args.base_question:
        classifier = Classifier(*args.labels, base_question=args.base_question)
    elif args.labels or args.base_question:
        raise TrainingInputError("--labels and --base-question go together: give both")
    elif args.intrinsic in CLASSIFIERS:
        classifier = CLASSIFIERS[args.intrinsic]
    else:
        raise TrainingInputError(
            f"eval knows the labels and base-model question of {', '.join(sorted(CLASSIFIERS))};"
            f" for {args.intrinsic!r} give both --labels and --base-question"
        )
    evaluation = Evaluation(args.intrinsic, classifier, args.target, args.url)
    training = [e.label for e in read_examples(Path(args.train_data)) if not e.augmented]
    report = evaluate(evaluation, read_examples(Path(args.data)), training, Path(args.out))
    for system, scores in report["overall"].items():
        shown = {k: round(v, 3) for k, v in scores.items() if isinstance(v, float)}
        if "calibration" in scores:
            shown |= {k: round(scores["calibration"][k], 3) for k in ("brier", "ece")}
        print(f"{system}: {json.dumps(shown)}")
    print(f"Report in {args.out}")
    return 0
