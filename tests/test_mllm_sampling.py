"""Per-pair sampling (Gumbel-max with counter-based noise): the hash against a plain-integer reference, the
sampled distribution against the softmax, and descriptions that do not depend on batching or order."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from cdbench import create_model  # noqa: E402
from cdbench.models.mllm.sampling import counter_uniforms, gumbel_noise, pair_key, per_pair_sampling_kwargs  # noqa: E402
from cdbench.models.mllm.settings import MLLMSettings  # noqa: E402

_U64 = (1 << 64) - 1


def _reference_uniforms(seed: int, keys: list[int], step: int, vocab_size: int) -> np.ndarray:
    """SplitMix64 (Steele et al. 2014) in Python integers, uint64 arithmetic made explicit."""

    def mix(x: int) -> int:
        x &= _U64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _U64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _U64
        return x ^ (x >> 31)

    out = np.empty((len(keys), vocab_size))
    for b, k in enumerate(keys):
        row = mix(mix(k + seed) + step)
        for t in range(vocab_size):
            out[b, t] = ((mix(row + (t + 1) * 0x9E3779B97F4A7C15) >> 11) + 0.5) / float(1 << 53)
    return out


@pytest.mark.parametrize("seed,step", [(0, 0), (7, 3), (2**40 + 5, 255)])
def test_counter_uniforms_equal_the_integer_reference(seed, step):
    keys = [0, 1, 12345, 2**62 + 17, 2**63 - 1]
    mine = counter_uniforms(seed, keys, step, 97).numpy()
    np.testing.assert_array_equal(mine, _reference_uniforms(seed, keys, step, 97))
    assert mine.min() > 0 and mine.max() < 1


def test_uniforms_are_uniform_and_independent_of_the_other_rows():
    from scipy import stats

    u = counter_uniforms(3, list(range(200)), 5, 1000).numpy()
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3
    np.testing.assert_array_equal(counter_uniforms(3, [150, 7], 5, 1000).numpy(), u[[150, 7]])
    assert abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < 0.01  # neighbouring tokens


def test_gumbel_max_samples_the_softmax():
    """argmax(z + g) over 40,000 keys: token frequencies match softmax(z) (chi-square)."""
    from scipy import stats

    z = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0], dtype=torch.float64)
    n = 40_000
    picks = (z + gumbel_noise(11, list(range(n)), 0, len(z))).argmax(1).numpy()
    observed = np.bincount(picks, minlength=len(z))
    expected = torch.softmax(z, 0).numpy() * n
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_warpers_run_before_the_noise():
    """temperature / top-k as transformers applies them when it samples; filtered tokens are never drawn."""
    s = MLLMSettings(do_sample=True, temperature=0.5, top_k=2, top_p=1.0, seed=1)
    kw = per_pair_sampling_kwargs(s, list(range(5000)), prompt_width=4)
    assert kw["do_sample"] is False and kw["temperature"] is None
    procs = kw["logits_processor"]
    assert [type(p).__name__ for p in procs] == ["TemperatureLogitsWarper", "TopKLogitsWarper", "GumbelMaxSampler"]
    scores = torch.tensor([[1.0, 0.0, 3.0, 2.9]]).repeat(5000, 1)
    ids = torch.zeros(5000, 6, dtype=torch.long)  # prompt width 4 + 2 generated: step 2
    picks = procs(ids, scores).argmax(1)
    counts = np.bincount(picks.numpy(), minlength=4)
    assert counts[0] == counts[1] == 0  # outside the top 2
    p2 = 1 / (1 + np.exp((2.9 - 3.0) / 0.5))  # softmax of (3.0, 2.9) at temperature 0.5
    assert abs(counts[2] / 5000 - p2) < 4 * np.sqrt(p2 * (1 - p2) / 5000)


def test_pair_key_depends_on_pixels_only():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8), rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    assert pair_key(a, b) == pair_key(a.copy(), np.asfortranarray(b)) and 0 <= pair_key(a, b) < 2**63
    assert pair_key(a, b) != pair_key(b, a)
    c = a.copy()
    c[0, 0, 0] ^= 1
    assert pair_key(c, b) != pair_key(a, b)


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(5)
    return [(rng.integers(0, 256, (30 + 4 * i, 40, 3), dtype=np.uint8),
             rng.integers(0, 256, (32, 36, 3), dtype=np.uint8)) for i in range(5)]


@pytest.mark.parametrize("family", ["llava", "mplug_owl2"])
def test_sampled_descriptions_do_not_depend_on_batching_or_order(family, pairs, tmp_path):
    if family == "llava":
        from cdbench.models.mllm.tiny import build_tiny_llava

        folder = build_tiny_llava(tmp_path / "m", seed=3)
    else:
        from cdbench.models.mplug_owl2 import build_tiny_mplug_owl2

        folder = build_tiny_mplug_owl2(tmp_path / "m", seed=3, weight_scale=3.0)
    opts = dict(do_sample=True, temperature=1.5, top_k=0, max_new_tokens=6, seed=4, workers=0)
    batched = create_model(folder, batch_size=4, **opts).describe(pairs)
    single = create_model(folder, batch_size=1, **opts)
    assert single.describe(pairs[::-1]) == batched[::-1]
    assert single.describe(pairs[2:3]) == batched[2:3]
    other_seed = create_model(folder, batch_size=4, **{**opts, "seed": 5}).describe(pairs)
    greedy = create_model(folder, batch_size=4, max_new_tokens=6).describe(pairs)
    assert other_seed != batched and greedy != batched  # the noise is there, and the seed chooses it


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_noise_is_the_same_on_the_gpu():
    keys = torch.tensor([0, 99, 2**62 + 3, 2**63 - 1])
    np.testing.assert_array_equal(counter_uniforms(9, keys.cuda(), 17, 32000).cpu().numpy(),
                                  counter_uniforms(9, keys, 17, 32000).numpy())
