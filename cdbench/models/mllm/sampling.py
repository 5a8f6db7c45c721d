"""Seeded sampling that depends on the pair, not on the batch: Gumbel-max with counter-based noise.

Drawing a token from ``softmax(z)`` equals taking ``argmax(z + g)`` with ``g`` i.i.d. standard Gumbel
noise (the Gumbel-max trick: Gumbel 1954; Maddison, Tarlow & Minka 2014, "A* Sampling", eq. 1). Here
the uniform behind each ``g = -log(-log(u))`` is a hash of ``(seed, pair key, position, token id)``
(the SplitMix64 finaliser: Steele, Lea & Flood 2014, "Fast splittable pseudorandom number
generators"), and the pair key is a hash of the pair's pixels. So a sampled description is a
function of the seed, the pair and the model alone: the same whatever the batch size, the order, the
evaluation chunks or the number of ranks (a sharded run writes what one process writes), and the
same on CPU and GPU up to the model's own arithmetic.

With ``temperature`` / ``top_k`` / ``top_p`` the scores are warped first, exactly as ``transformers``
does when it samples (same warpers, same order, after the repetition penalty), then noised; greedy
decoding of the noised scores is the sample.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment (2^64 / golden ratio)
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # SplitMix64's finaliser multipliers


def _signed(c: int) -> int:
    """A 64-bit constant as the int64 with the same bits."""
    return c - (1 << 64) if c >= 1 << 63 else c


def pair_key(image1: np.ndarray, image2: np.ndarray) -> int:
    """A 63-bit key of a pair's pixels (BLAKE2b of the shapes, dtypes and bytes of both images)."""
    h = hashlib.blake2b(digest_size=8)
    for im in (image1, image2):
        a = np.ascontiguousarray(im)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(memoryview(a).cast("B"))
    return int.from_bytes(h.digest(), "little") >> 1


def _shr(x, s: int):
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def splitmix64(x):
    """The SplitMix64 finaliser on int64 tensors (two's-complement wrap-around = uint64 arithmetic)."""
    x = (x ^ _shr(x, 30)) * _signed(_M1)
    x = (x ^ _shr(x, 27)) * _signed(_M2)
    return x ^ _shr(x, 31)


def counter_uniforms(seed: int, keys, step: int, vocab_size: int):
    """(B, V) float64 uniforms in (0, 1): ``u[b, t] = hash(seed, keys[b], step, t)``.

    Per row and step a SplitMix64 stream: ``state = mix(mix(seed + key) + step)``, then token ``t`` takes
    ``mix(state + (t + 1) * golden)``; the top 53 bits give ``(n + 0.5) / 2^53``.
    """
    import torch

    keys = torch.as_tensor(keys, dtype=torch.int64)
    row = splitmix64(splitmix64(keys + _signed(seed % (1 << 64))) + int(step))
    tokens = torch.arange(1, vocab_size + 1, dtype=torch.int64, device=keys.device) * _signed(_GOLDEN)
    bits = splitmix64(row[:, None] + tokens[None, :])
    return (_shr(bits, 11).double() + 0.5) / float(1 << 53)


def gumbel_noise(seed: int, keys, step: int, vocab_size: int):
    """(B, V) standard Gumbel noise ``-log(-log(u))`` from :func:`counter_uniforms`."""
    import torch

    return -torch.log(-torch.log(counter_uniforms(seed, keys, step, vocab_size)))


def make_gumbel_sampler(seed: int, keys, prompt_width: int):
    """A ``transformers`` logits processor adding each row's Gumbel noise for the current position; greedy
    decoding of what it returns samples from the (warped) softmax. ``keys``: one per batch row."""
    import torch
    from transformers import LogitsProcessor

    class GumbelMaxSampler(LogitsProcessor):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            step = input_ids.shape[1] - prompt_width
            noise = gumbel_noise(seed, row_keys.to(scores.device), step, scores.shape[-1])
            return scores.double() + noise  # float64: ties and rounding cannot bias the argmax

    row_keys = torch.as_tensor(list(keys), dtype=torch.int64)
    return GumbelMaxSampler()


def per_pair_sampling_kwargs(settings: Any, keys, prompt_width: int) -> dict[str, Any]:
    """``generate`` keyword arguments that sample each row with its own noise (``num_beams == 1``):
    greedy search over scores warped as ``transformers`` samples (temperature, top-k, top-p) plus
    :func:`make_gumbel_sampler`'s noise."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    procs = LogitsProcessorList()
    if settings.temperature != 1.0:
        procs.append(TemperatureLogitsWarper(settings.temperature))
    if settings.top_k:
        procs.append(TopKLogitsWarper(top_k=settings.top_k))
    if settings.top_p < 1.0:
        procs.append(TopPLogitsWarper(top_p=settings.top_p))
    procs.append(make_gumbel_sampler(settings.seed, keys, prompt_width))
    kw = settings.generation_kwargs()
    kw.update(do_sample=False, temperature=None, top_p=None, top_k=None, logits_processor=procs)
    return kw

