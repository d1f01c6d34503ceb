"""docs/FORMAT.md section 4.1 defines torch's CPU MT19937 stream to the bit; a numpy reading of
that text alone reproduces torch's `uniform_` (the stream imported parameter-golf tickets use)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch

FORMAT_MD = Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md"


def mt19937_words(seed: int, count: int) -> np.ndarray:
    """MT19937's 32-bit outputs after the reference initialisation from ``seed`` (section 4.1)."""
    x = [seed & 0xFFFFFFFF]
    for i in range(1, 624):
        x.append((1812433253 * (x[-1] ^ (x[-1] >> 30)) + i) & 0xFFFFFFFF)
    out, k = [], 624
    while len(out) < count:
        if k == 624:  # the twist
            for i in range(624):
                y = (x[i] & 0x80000000) | (x[(i + 1) % 624] & 0x7FFFFFFF)
                x[i] = x[(i + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
            k = 0
        y = x[k]
        k += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        out.append(y ^ (y >> 18))
    return np.array(out, np.uint32)


def values(words: np.ndarray, b: float) -> np.ndarray:
    """Section 4.1's float32 per output word, for the bound ``b``."""
    lo, hi = np.float64(np.float32(-b)), np.float64(np.float32(b))
    x = (words & 0xFFFFFF).astype(np.float64) * 2.0**-24
    return (x * (hi - lo) + lo).astype(np.float32)


def test_the_documented_stream_is_torchs_uniform_bit_for_bit():
    shapes = [(64, 48), (48, 64), (7, 3)]
    bounds = [math.sqrt(3) * math.sqrt(2 / (48 + 64)), math.sqrt(6 / 64), 0.7]
    for seed in (0, 1, 1337, 2**32 - 1):
        g = torch.Generator(device="cpu").manual_seed(seed)
        words = mt19937_words(seed, sum(math.prod(s) for s in shapes))
        pos = 0
        for shape, b in zip(shapes, bounds):  # one shared sequence, tensor after tensor
            got = torch.empty(shape, dtype=torch.float32).uniform_(-b, b, generator=g).numpy()
            n = math.prod(shape)
            want = values(words[pos:pos + n], b).reshape(shape)
            pos += n
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (seed, shape)


def test_format_md_states_the_mt19937_known_words():
    text = FORMAT_MD.read_text(encoding="utf-8")
    m = re.search(r"seed 5, words 0\.\.3 are `([0-9a-f]{8}) ([0-9a-f]{8}) ([0-9a-f]{8})\s+([0-9a-f]{8})`", text)
    assert m, "section 9 lists MT19937's first words of seed 5"
    assert [f"{w:08x}" for w in mt19937_words(5, 4)] == list(m.groups())
