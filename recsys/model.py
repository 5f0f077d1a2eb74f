"""The RippleNet network: relation-aware attention over per-user ripple-set memories."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from kgenrich.recsys.params import RippleParams


def _glorot_uniform(shape: tuple[int, ...], *, generator: torch.Generator) -> torch.Tensor:
    """TensorFlow's ``xavier_initializer`` (what the original uses), fan computed as TF does:
    receptive field = all leading dims but the last two."""
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound


@dataclass(frozen=True)
class Losses:
    """One batch's loss terms; ``total`` is what is minimized."""

    total: torch.Tensor
    base: torch.Tensor
    kge: torch.Tensor
    l2: torch.Tensor
    logits: torch.Tensor


class RippleNet(nn.Module):
    """RippleNet (Wang et al., CIKM 2018), following the authors' TensorFlow code.

    Per hop: ``p_i = softmax(v^T R_i h_i)``, ``o = sum_i p_i t_i``; the item embedding is updated
    after each hop by ``item_update_mode`` and the score is ``v_H^T (o_1 + ... + o_H)`` (only
    ``o_H`` when ``using_all_hops`` is False).  Relation ``n_relations - 1`` is the self-loop
    relation used by the no-KG fallback.
    """

    def __init__(
        self, *, n_entities: int, n_relations: int, params: RippleParams, seed: int
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        d = params.dim
        self.params = params
        self.entity_emb = nn.Parameter(_glorot_uniform((n_entities, d), generator=gen))
        self.relation_emb = nn.Parameter(_glorot_uniform((n_relations, d, d), generator=gen))
        # No bias, as the original (tf.matmul with a single weight matrix).
        self.transform = nn.Parameter(_glorot_uniform((d, d), generator=gen))

    def _update(self, item: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        mode = self.params.item_update_mode
        if mode == "replace":
            return o
        if mode == "plus":
            return item + o
        if mode == "replace_transform":
            return o @ self.transform
        return (item + o) @ self.transform

    def _memories(
        self, items: torch.Tensor, heads: torch.Tensor, tails: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, n_hop, n_memory = heads.shape
        n = heads.numel()
        # One gather for items, heads and tails: a single sparse-to-dense backward instead of 3.
        e = self.entity_emb[torch.cat([items, heads.reshape(-1), tails.reshape(-1)])]
        h = e[batch:batch + n].view(batch, n_hop, n_memory, -1)
        return e[:batch], h, e[batch + n:].view(batch, n_hop, n_memory, -1)

    def _logits(
        self, v: torch.Tensor, h: torch.Tensor, relations: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        batch, n_hop, n_memory, d = h.shape
        rel = self.relation_emb
        # Two equal ways to get v^T R h per memory: with few relations it is cheaper to map v
        # through every relation once (R^T v) than to touch a d x d matrix per memory.
        few_relations = rel.shape[0] <= n_memory
        r_flat = None if few_relations else rel.view(rel.shape[0], d * d)[relations]
        outputs: list[torch.Tensor] = []
        for hop in range(n_hop):
            if r_flat is None:
                keys = torch.gather(
                    torch.einsum("bi,kij->bkj", v, rel), 1,
                    relations[:, hop].unsqueeze(-1).expand(batch, n_memory, d),
                )
                scores = (keys * h[:, hop]).sum(-1)
            else:
                outer = (v[:, None, :, None] * h[:, hop, :, None, :]).flatten(-2)  # v_i h_j
                scores = (r_flat[:, hop] * outer).sum(-1)
            probs = torch.softmax(scores, dim=1)
            o = (probs.unsqueeze(-1) * t[:, hop]).sum(1)
            v = self._update(v, o)
            outputs.append(o)
        y = torch.stack(outputs).sum(0) if self.params.using_all_hops else outputs[-1]
        return (v * y).sum(1)

    def forward(
        self,
        items: torch.Tensor,
        heads: torch.Tensor,
        relations: torch.Tensor,
        tails: torch.Tensor,
    ) -> torch.Tensor:
        """Logits for ``items`` ``[B]`` given each row's memories ``[B, n_hop, n_memory]``."""
        v, h, t = self._memories(items, heads, tails)
        return self._logits(v, h, relations, t)

    def losses(
        self,
        items: torch.Tensor,
        heads: torch.Tensor,
        relations: torch.Tensor,
        tails: torch.Tensor,
        labels: torch.Tensor,
    ) -> Losses:
        """Cross-entropy + KGE term + L2 for one batch, weighted exactly as the original.

        KGE: ``-kge_weight * sum_hops mean(sigmoid(h^T R t))``; L2: ``l2_weight`` times the
        *sum* (not mean) of the squared h, R, t of every memory of every row, as the original.
        """
        v, h, t = self._memories(items, heads, tails)
        logits = self._logits(v, h, relations, t)
        base = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        n_rel, d = self.relation_emb.shape[0], self.relation_emb.shape[1]
        r_flat = self.relation_emb.view(n_rel, d * d)[relations]
        hrt = (r_flat * (h.unsqueeze(-1) * t.unsqueeze(-2)).flatten(-2)).sum(-1)  # h^T R t
        kge = -self.params.kge_weight * torch.sigmoid(hrt).mean(dim=(0, 2)).sum()
        # sum over memories of ||R||^2 == sum over relations of (uses x ||R||^2): no gather.
        uses = torch.bincount(relations.reshape(-1), minlength=n_rel).to(self.relation_emb.dtype)
        r_sq = (uses * self.relation_emb.pow(2).sum((1, 2))).sum()
        l2 = self.params.l2_weight * (h.pow(2).sum() + t.pow(2).sum() + r_sq)
        return Losses(total=base + kge + l2, base=base, kge=kge, l2=l2, logits=logits)
