"""``massface train CONFIG [--set key=value ...]`` — one process, or under torchrun for DDP:

    massface train configs/run.yaml --set train.steps=2000
    torchrun --nproc_per_node=4 -m massface train configs/run.yaml
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``massface train``; returns the exit status (0 done, 2 bad config / checkpoint / data / existing run,
    3 stopped on a non-finite loss, 130 interrupted or paused)."""
    ap = argparse.ArgumentParser(prog="massface train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", nargs="?", help="YAML config (omit to start from the defaults)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key, e.g. --set loss.triplet.miner=hardest (repeatable)")
    ap.add_argument("--no-resume", action="store_true",
                    help="start from step 0 instead of resuming OUTPUT_DIR/checkpoints/latest.pt; refused when "
                         "OUTPUT_DIR already holds a run, unless --overwrite is given too")
    ap.add_argument("--overwrite", action="store_true",
                    help="with --no-resume: delete the run already in OUTPUT_DIR (its checkpoints/, metrics.jsonl, "
                         "config.yaml and tensorboard/; other files stay) before training")
    ap.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = ap.parse_args(argv)

    from massface.training.config import ConfigError, config_to_dict, load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"massface train: config error: {err}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(config_to_dict(cfg), indent=2))
        return 0
    if args.overwrite and not args.no_resume:
        print("massface train: --overwrite only applies with --no-resume (the default resumes the run)",
              file=sys.stderr)
        return 2
    from massface.data import DataFormatError
    from massface.training.callbacks import log_to_stderr
    from massface.training.checkpoint import CheckpointError
    from massface.training.trainer import ExistingRunError, Trainer, TrainingStopped

    log_to_stderr()  # the trainer's progress lines (the massface.training logger)

    try:
        result = Trainer(cfg, resume=not args.no_resume, overwrite=args.overwrite).fit()
    except ConfigError as err:
        print(f"massface train: config error: {err}", file=sys.stderr)
        return 2
    except (CheckpointError, DataFormatError, ExistingRunError) as err:
        print(f"massface train: {err}", file=sys.stderr)
        return 2
    except TrainingStopped as err:
        print(f"massface train: stopped: {err}", file=sys.stderr)
        return 3
    print(json.dumps(result))
    return 0 if result["status"] == "completed" else 130


if __name__ == "__main__":
    sys.exit(main())
