"""The CD-Net architecture: a learned, CIELAB-like colour-difference formula.

Reference: Z. Wang, K. Xu, Y. Yang, J. Dong, S. Gu, L. Xu, Y. Fang and K. Ma, "Measuring Perceptual
Color Differences of Smartphone Photographs", IEEE TPAMI 45(8), 2023 (Sec. 4, Fig. 6), and its public
code (layer names ``conv1x1``, ``conv11x11``, ``conv_m1..3``; the 12x12 matrix ``cube``).

A Siamese network with shared weights maps an sRGB image in [0, 1] to 12 features per pixel:

    f(x) = W3 * lrelu(W2 * lrelu(W1 * lrelu([W_a * x ; up(W_b (*) x)])))

with ``W_a`` a 1x1 conv 3->32, ``W_b`` an 11x11 conv 3->32 (dilation 3, padding 5; its output is
``H-20 x W-20`` and is resized back to ``H x W``, bilinear, ``align_corners=True``), ``W1``..``W3``
1x1 convs 64->32->16->12, no biases anywhere, LeakyReLU slope 0.01. For two images, with
``d = |f(x) - f(y)|`` (12 values per pixel) and ``M = (|C| + |C|^T) / 2``,

    D(i) = sqrt(1e-8 + d(i)^T M d(i))          (the local CD map)
    score = mean_i D(i)                         (the CD of the pair)

Properties (see ``tests/test_cdnet_network.py``): ``D(x, x) = 1e-4`` everywhere (the square root of
the 1e-8 stabiliser; exactly 0 without it), symmetry ``D(x, y) = D(y, x)`` and ``D >= 0`` (``M`` has
non-negative entries, so ``d^T M d >= 0`` for the non-negative ``d``), for any ``C``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_FEATURES = 12
EPS = 1e-8
MIN_SIDE = 21  # the dilated 11x11 conv (effective size 31, padding 5) needs H, W >= 21


class CDNet(nn.Module):
    """CD-Net (Wang et al., TPAMI 2023): Siamese feature transform plus a learned 12x12 metric ``cube``.

    ``forward(x, y)`` takes two ``(B, 3, H, W)`` batches in [0, 1] and returns ``(B,)`` scores;
    :meth:`cd_map` returns the ``(B, H, W)`` per-pixel map whose mean is the score.
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(3, 32, kernel_size=1, bias=False)
        self.conv11x11 = nn.Conv2d(3, 32, kernel_size=11, padding=5, dilation=3, bias=False)
        self.conv_m1 = nn.Conv2d(64, 32, kernel_size=1, bias=False)
        self.conv_m2 = nn.Conv2d(32, 16, kernel_size=1, bias=False)
        self.conv_m3 = nn.Conv2d(16, N_FEATURES, kernel_size=1, bias=False)
        self.negative_slope = negative_slope
        self.cube = nn.Parameter(torch.rand(N_FEATURES, N_FEATURES))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The public code's initialisation: Kaiming-uniform conv weights (``a=0``, fan-in,
        bound ``sqrt(6 / fan_in)``) and ``C ~ U(0, 1)``."""
        with torch.no_grad():
            for conv in self.convs():
                nn.init.kaiming_uniform_(conv.weight, generator=generator)
            self.cube.copy_(torch.rand(self.cube.shape, generator=generator))

    def convs(self) -> list[nn.Conv2d]:
        """The five convolutions (the Siamese feature transform), in forward order."""
        return [self.conv1x1, self.conv11x11, self.conv_m1, self.conv_m2, self.conv_m3]

    def metric(self) -> torch.Tensor:
        """``M = (|C| + |C|^T) / 2``: symmetric with non-negative entries."""
        c = self.cube.abs()
        return (c + c.t()) / 2

    def _check_size(self, h: int, w: int) -> None:
        if h < MIN_SIDE or w < MIN_SIDE:
            raise ValueError(f"CD-Net needs images of at least {MIN_SIDE}x{MIN_SIDE} pixels, got {h}x{w}")

    def _pointwise(self, local: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``W3 * lrelu(W2 * lrelu(W1 * lrelu([local ; context])))`` (all 1x1 convs)."""
        s = self.negative_slope
        z = F.leaky_relu(torch.cat([local, context], dim=1), s)
        z = F.leaky_relu(self.conv_m1(z), s)
        z = F.leaky_relu(self.conv_m2(z), s)
        return self.conv_m3(z)

    def _context(self, x: torch.Tensor) -> torch.Tensor:
        """The 11x11 dilated branch, resized back to the input size (bilinear, align_corners=True)."""
        return F.interpolate(self.conv11x11(x), size=x.shape[-2:], mode="bilinear", align_corners=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)``: ``(B, 3, H, W)`` in [0, 1] -> ``(B, 12, H, W)``."""
        self._check_size(*x.shape[-2:])
        return self._pointwise(self.conv1x1(x), self._context(x))

    def distance_map(self, fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
        """Per-pixel ``sqrt(1e-8 + d^T M d)`` with ``d = |fx - fy|``: ``(B, 12, H, W)`` x 2 -> ``(B, H, W)``.

        The quadratic form is always evaluated in float32 (under fp16 autocast 1e-8 would underflow).
        """
        d = (fx.float() - fy.float()).abs()
        md = torch.einsum("ij,bjhw->bihw", self.metric().float(), d)
        return torch.sqrt(EPS + (d * md).sum(dim=1))

    def cd_map(self, x: torch.Tensor, y: torch.Tensor, band_rows: int | None = 32) -> torch.Tensor:
        """The local CD map ``(B, H, W)``; both images go through the shared transform in one batch.

        With ``band_rows`` the per-pixel part (1x1 convs, activations, distance) runs on bands of that
        many rows, so its 64/32/16/12-channel intermediates stay in cache: the same numbers, about 2x
        faster on CPU at 1024x1024 and far less memory. ``None`` runs it on the whole image at once
        (what training uses).
        """
        if x.shape != y.shape:
            raise ValueError(f"the two images of a pair must have the same shape, got {tuple(x.shape)} "
                             f"and {tuple(y.shape)}")
        xy = torch.cat([x, y], dim=0)
        h, w = xy.shape[-2:]
        self._check_size(h, w)
        if band_rows is None or band_rows >= h:
            fx, fy = self._pointwise(self.conv1x1(xy), self._context(xy)).chunk(2, dim=0)
            return self.distance_map(fx, fy)
        context = self._context(xy)
        out = torch.empty((x.shape[0], h, w), dtype=torch.float32, device=x.device)
        for r0 in range(0, h, band_rows):
            r1 = min(h, r0 + band_rows)
            f = self._pointwise(self.conv1x1(xy[:, :, r0:r1]), context[:, :, r0:r1])
            fx, fy = f.chunk(2, dim=0)
            out[:, r0:r1] = self.distance_map(fx, fy)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores ``(B,)``: the mean of the local CD map over pixels (whole-image path, for training)."""
        return self.cd_map(x, y, band_rows=None).mean(dim=(1, 2))
