"""``cdbench convert cdnet OLD.pt OUT_DIR``: original checkpoints to cdbench's folder format."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert an original checkpoint to a cdbench model folder")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    c = kinds.add_parser("cdnet", help="CD-Net: original torch.save file (netF_dict + cube) -> "
                                       "config.json + model.safetensors",
                         description="Read an original CD-Net training checkpoint (torch.save dict with "
                                     "'netF_dict', 'cube', optimizer state) with torch.load(weights_only=True) "
                                     "and write OUT_DIR/config.json + OUT_DIR/model.safetensors (atomically).")
    c.add_argument("checkpoint", metavar="OLD.pt", help="original CD-Net checkpoint (e.g. CD-00042.pt)")
    c.add_argument("out", metavar="OUT_DIR", help="output folder (loadable with create_model(OUT_DIR))")
    c.add_argument("--overwrite", action="store_true", help="replace an existing OUT_DIR")
    c.set_defaults(func=_run_cdnet)


def _run_cdnet(args: argparse.Namespace) -> int:
    from cdbench.models.cdnet.checkpoint import convert_original_checkpoint, read_config

    out = convert_original_checkpoint(args.checkpoint, args.out, overwrite=args.overwrite)
    src = read_config(out).get("source", {})
    epoch = f" (epoch {src['epoch']})" if src.get("epoch") is not None else ""
    print(f"wrote {out}/config.json and model.safetensors from {args.checkpoint}{epoch}")
    return 0
