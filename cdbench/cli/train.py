"""``cdbench train cdnet --dataset DIR --out DIR``: train CD-Net on a built dataset's ``scores`` config."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a learned model (CD-Net) on a built dataset folder")
    kinds = p.add_subparsers(dest="kind", metavar="MODEL", required=True)
    c = kinds.add_parser(
        "cdnet", help="CD-Net (Wang et al., TPAMI 2023)",
        description="Train CD-Net on the 'scores' config of a dataset folder built by `cdbench build` "
                    "(defaults: the public code's recipe). OUT receives config.json + model.safetensors "
                    "(the epoch with the best validation SRCC; load with create_model(OUT)), train_state.pt "
                    "(rerun the same command to resume), history.json and train_config.json.")
    c.add_argument("--dataset", required=True, help="built dataset folder (cdbench build spcd|m-spcd)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--split", default="train", help="training split of the scores config (default: train)")
    c.add_argument("--val-split", help="validation split (default: 'validation' when the folder has one)")
    c.add_argument("--val-fraction", type=float, default=0.1,
                   help="without a validation split: fraction of the training scenes held out (default 0.1; "
                        "0 keeps the last epoch)")
    c.add_argument("--epochs", type=int, help="epochs (default 50)")
    c.add_argument("--batch-size", type=int, help="pairs per step (default 8)")
    c.add_argument("--crop", type=int, help="random crop side in pixels (default 768)")
    c.add_argument("--lr", type=float, help="Adam learning rate for the weights and C (default 1e-3)")
    c.add_argument("--milestones", type=int, nargs="*", help="epochs where the rate is multiplied by --gamma "
                                                             "(default 5 10 15 20 30 35)")
    c.add_argument("--gamma", type=float, help="rate decay factor (default 0.5)")
    c.add_argument("--ema-decay", type=float, help="EMA decay of the weights (default 0.999)")
    c.add_argument("--rotation", type=float, help="max random rotation in degrees (default 3; 0 disables)")
    c.add_argument("--invert", type=float, help="probability of the colour inversion augmentation (default 0.5)")
    c.add_argument("--no-resize", action="store_true", help="no resizing rules (small images stay small)")
    c.add_argument("--seed", type=int, help="random seed (default 19981025, the public code's)")
    c.add_argument("--amp", choices=("none", "bf16", "fp16"), help="mixed precision on the GPU (default none)")
    c.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    c.add_argument("--workers", type=int, help="image decoding threads")
    c.add_argument("--overwrite", action="store_true", help="start afresh even if OUT holds a run to resume")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(func=_run_cdnet)


def _run_cdnet(args: argparse.Namespace) -> int:
    from cdbench.models.cdnet.train import config_from_options, train_from_dataset

    cfg = config_from_options(
        epochs=args.epochs, batch_size=args.batch_size, crop=args.crop, lr=args.lr,
        milestones=tuple(args.milestones) if args.milestones is not None else None, gamma=args.gamma,
        ema_decay=args.ema_decay, rotation=args.rotation, invert=args.invert,
        resize=False if args.no_resize else None, seed=args.seed, amp=args.amp, device=args.device,
        workers=args.workers, progress=not args.quiet)
    res = train_from_dataset(args.dataset, args.out, cfg, split=args.split, val_split=args.val_split,
                             val_fraction=args.val_fraction, overwrite=args.overwrite)
    if res.best_srcc is not None:
        print(f"best epoch {res.best_epoch} (validation SRCC {res.best_srcc:.4f}) -> {res.out_dir}")
    else:
        print(f"trained {len(res.history)} epochs -> {res.out_dir}")
    return 0
