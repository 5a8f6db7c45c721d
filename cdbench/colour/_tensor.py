"""Tensor plumbing shared by the colour functions: numpy/torch input, dtype and device rules.

Every public colour function accepts a torch tensor or anything numpy can read, channels last,
any batch shape. Results are torch tensors for tensor input and numpy arrays for numpy input.
Floating dtype: ``dtype`` when given; otherwise float64 input stays float64 and everything else
(uint8, integers, float16/32) is computed in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cdbench.errors import DataError


def result_dtype(x: Any, dtype: torch.dtype | None) -> torch.dtype:
    """The floating dtype a computation on ``x`` runs in (see the module docstring)."""
    if dtype is not None:
        return dtype
    src = x.dtype if isinstance(x, (torch.Tensor, np.ndarray)) else None
    return torch.float64 if src in (torch.float64, np.float64, np.dtype("float64")) else torch.float32


def as_tensor(x: Any, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
              keep_integer: bool = False) -> torch.Tensor:
    """``x`` as a torch tensor on ``device`` in the floating dtype of :func:`result_dtype`.

    With ``keep_integer`` a uint8 input is returned as uint8 (for the sRGB lookup table)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        arr = np.asarray(x)
        if arr.dtype == object:
            raise DataError(f"expected a numeric array, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if device is not None:
        t = t.to(device)
    if keep_integer and t.dtype == torch.uint8:
        return t
    return t.to(result_dtype(x, dtype))


def check_channels(t: torch.Tensor, what: str = "colour array") -> None:
    """A clear error unless the last axis holds 3 channels."""
    if t.ndim == 0 or t.shape[-1] != 3:
        raise DataError(f"a {what} must have 3 channels on its last axis, got shape {tuple(t.shape)}")


def like_input(result: torch.Tensor, x: Any) -> Any:
    """Return ``result`` as numpy when the caller passed a non-tensor."""
    if isinstance(x, torch.Tensor):
        return result
    return result.detach().cpu().numpy()


def split3(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three channels of a channels-last array."""
    return t[..., 0], t[..., 1], t[..., 2]


def stack3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Three channel planes back into a channels-last array."""
    return torch.stack((a, b, c), dim=-1)


def spow(x: torch.Tensor, p: float) -> torch.Tensor:
    """Sign-preserving power ``sign(x) * |x|**p`` (colour-science's ``spow``), for out-of-gamut input."""
    return torch.sign(x) * torch.abs(x) ** p
