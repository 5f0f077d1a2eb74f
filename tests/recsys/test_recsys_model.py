"""The network against a direct transcription of the original TensorFlow graph."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kgenrich.recsys.model import RippleNet
from kgenrich.recsys.params import RippleParams


def _reference(
    net: RippleNet, items: torch.Tensor, heads: torch.Tensor, rels: torch.Tensor,
    tails: torch.Tensor, labels: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RippleNet as hwwang55/RippleNet's model.py writes it (matmuls over gathered R)."""
    p = net.params
    v = net.entity_emb[items]
    h_list = [net.entity_emb[heads[:, k]] for k in range(p.n_hop)]
    r_list = [net.relation_emb[rels[:, k]] for k in range(p.n_hop)]
    t_list = [net.entity_emb[tails[:, k]] for k in range(p.n_hop)]
    o_list = []
    for k in range(p.n_hop):
        rh = torch.matmul(r_list[k], h_list[k].unsqueeze(3)).squeeze(3)
        probs = torch.softmax(torch.matmul(rh, v.unsqueeze(2)).squeeze(2), dim=1)
        o = (t_list[k] * probs.unsqueeze(2)).sum(1)
        if p.item_update_mode == "replace":
            v = o
        elif p.item_update_mode == "plus":
            v = v + o
        elif p.item_update_mode == "replace_transform":
            v = o @ net.transform
        else:
            v = (v + o) @ net.transform
        o_list.append(o)
    y = o_list[-1]
    if p.using_all_hops:
        for k in range(p.n_hop - 1):
            y = y + o_list[k]
    logits = (v * y).sum(1)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    kge = torch.zeros(())
    l2 = torch.zeros(())
    for k in range(p.n_hop):
        hrt = torch.matmul(
            torch.matmul(h_list[k].unsqueeze(2), r_list[k]), t_list[k].unsqueeze(3)
        ).squeeze()
        kge = kge + torch.sigmoid(hrt).mean()
        l2 = l2 + (h_list[k] ** 2).sum() + (t_list[k] ** 2).sum() + (r_list[k] ** 2).sum()
    return logits, loss - p.kge_weight * kge + p.l2_weight * l2


@pytest.mark.parametrize("n_memory", [3, 8])  # 3 < 5 relations: per-memory path; 8: shared path
@pytest.mark.parametrize("mode", ["replace", "plus", "replace_transform", "plus_transform"])
@pytest.mark.parametrize("all_hops", [True, False])
def test_matches_reference(n_memory: int, mode: str, all_hops: bool) -> None:
    params = dataclasses.replace(
        RippleParams(dim=4, n_hop=3, n_memory=n_memory, kge_weight=0.3, l2_weight=1e-3),
        item_update_mode=mode,  # type: ignore[arg-type]
        using_all_hops=all_hops,
    )
    # float64: the test checks that the network computes the reference's algebra. In float32 the
    # two orders of summation differ by a few ulps, and how many depends on the CPU's vector
    # width (3.4e-6 on an AVX2-only EPYC against 1e-6 here), so a float32 tolerance is either
    # too tight for some x86-64 CPU or too loose to catch a wrong term.
    net = RippleNet(n_entities=30, n_relations=5, params=params, seed=0).double()
    with torch.no_grad():  # glorot init for 30 entities is tiny; make differences visible
        net.entity_emb.mul_(10)
    g = torch.Generator().manual_seed(1)
    shape = (6, 3, n_memory)
    items = torch.randint(0, 30, (6,), generator=g)
    heads = torch.randint(0, 30, shape, generator=g)
    rels = torch.randint(0, 5, shape, generator=g)
    tails = torch.randint(0, 30, shape, generator=g)
    labels = torch.randint(0, 2, (6,), generator=g).double()
    logits = net(items, heads, rels, tails)
    losses = net.losses(items, heads, rels, tails, labels)
    ref_logits, ref_loss = _reference(net, items, heads, rels, tails, labels)
    assert logits.dtype == torch.float64
    torch.testing.assert_close(logits, ref_logits, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(losses.logits, ref_logits, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(losses.total, ref_loss, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad(losses.total, [net.entity_emb, net.relation_emb])
    ref_grads = torch.autograd.grad(ref_loss, [net.entity_emb, net.relation_emb])
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
