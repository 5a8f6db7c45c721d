"""``cdbench cdmap IMG1 IMG2 --weights W --out map.png``: CD-Net's local colour-difference map."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cdmap", help="write the local CD map of two images as a heat-map PNG (CD-Net)",
                       description="Score two images with CD-Net and write its per-pixel colour-difference map: "
                                   "by default a figure with the two inputs and the heat map (with a colour bar "
                                   "and the score); --map-only writes the coloured map alone, at the resolution "
                                   "CD-Net sees.")
    p.add_argument("image1")
    p.add_argument("image2")
    p.add_argument("--weights", default=os.environ.get("CDBENCH_CDNET_WEIGHTS"),
                   help="CD-Net folder (config.json + model.safetensors) or an original .pt checkpoint "
                        "(default: $CDBENCH_CDNET_WEIGHTS)")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--map-only", action="store_true", help="write only the coloured map, one pixel per pixel")
    p.add_argument("--raw", metavar="FILE.npy", help="also save the map's float32 values")
    p.add_argument("--cmap", default="inferno", help="matplotlib colour map (default: inferno)")
    p.add_argument("--vmax", type=float, help="top of the colour scale (default: the map's 99th percentile)")
    p.add_argument("--no-resize", action="store_true",
                   help="compare at the native resolution (skip CD-Net's evaluation resizing)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from cdbench.errors import DataError
    from cdbench.models.cdnet.model import create_cdnet

    if not args.weights:
        raise DataError("cdmap needs --weights PATH (a CD-Net folder or original .pt) or $CDBENCH_CDNET_WEIGHTS")
    model = create_cdnet(args.weights, device=args.device, resize=not args.no_resize, batch_size=1)
    cd = model.cd_map((args.image1, args.image2))
    score = float(cd.astype(np.float64).mean())
    vmax = args.vmax if args.vmax is not None else float(np.percentile(cd, 99))
    vmax = vmax if vmax > 0 else 1.0
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise DataError(f"{out}: --out must be a .png file")
    try:
        write_heatmap(out, cd, args.image1, args.image2, score, vmax, args.cmap, args.map_only)
    except ValueError as e:
        raise DataError(f"cdmap: {e}") from None
    if args.raw:
        import io

        from cdbench.io import atomic_write_bytes

        buf = io.BytesIO()
        np.save(buf, cd.astype(np.float32))
        atomic_write_bytes(args.raw, buf.getvalue())
    print(f"CD-Net score {score:.4f}; map {cd.shape[1]}x{cd.shape[0]} (max {cd.max():.4f}) -> {out}")
    return 0


def write_heatmap(out, cd, image1, image2, score: float, vmax: float, cmap: str = "inferno",
                  map_only: bool = False) -> None:
    """Write the map ``cd`` as a PNG: alone (coloured, one pixel per value) or beside the two inputs."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from cdbench.data.images import load_image
    from cdbench.io import atomic_write_bytes

    colours = plt.get_cmap(cmap)(np.clip(cd / vmax, 0, 1))[..., :3]
    buf = io.BytesIO()
    if map_only:
        Image.fromarray((colours * 255 + 0.5).astype(np.uint8)).save(buf, format="PNG")
    else:
        fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.2), constrained_layout=True)
        for ax, im, title in ((axes[0], image1, "image 1"), (axes[1], image2, "image 2")):
            arr = load_image(im)
            ax.imshow(arr if arr.dtype == np.uint8 else np.clip(arr, 0, 1))
            ax.set_title(f"{title}: {getattr(im, 'name', None) or str(im).rsplit('/', 1)[-1]}", fontsize=9)
        shown = axes[2].imshow(cd, cmap=cmap, vmin=0, vmax=vmax)
        axes[2].set_title(f"CD-Net local CD map (score {score:.3f})", fontsize=9)
        fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.02)
        for ax in axes:
            ax.set_axis_off()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
