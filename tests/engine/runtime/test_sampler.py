"""The in-pipeline top-k sampler draws from transformers' sampling distribution."""

from __future__ import annotations

import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper

from engine.runtime.lm import TOP_K, TopKSampler


def test_top_k_sampler_matches_transformers_temperature_and_top_k() -> None:
    torch.manual_seed(0)
    scores = torch.randn(1, 300) * 3
    scores[0, 7] = float("-inf")  # a suppressed token is never drawn
    ids = torch.zeros(1, 1, dtype=torch.long)
    reference = TopKLogitsWarper(TOP_K)(ids, TemperatureLogitsWarper(0.6)(ids, scores.clone()))
    expected = torch.softmax(reference, dim=-1)[0]
    sampler = TopKSampler(0.6, TOP_K)
    draws = 20_000
    counts = torch.zeros(300)
    for _ in range(draws):
        out = sampler(ids, scores.clone())
        assert torch.isfinite(out).sum() == 1  # exactly one token left for greedy decoding
        counts[out[0].argmax()] += 1
    assert counts[7] == 0 and counts[expected == 0].sum() == 0
    assert torch.allclose(counts / draws, expected, atol=0.015)
