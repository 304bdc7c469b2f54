"""A minGPT/nanoGPT-style causal transformer LM whose forward returns (logits, loss).

Token + position embeddings, pre-norm blocks with causal ``F.scaled_dot_product_attention``, a
final LayerNorm and an LM head tied to the token embedding; ``forward(idx, targets)`` computes the
cross-entropy itself, as nanoGPT's model.py does, and ``training_step`` returns it. AdamW lr 1e-3,
weight decay 0.1 (nanoGPT's default), betas (0.9, 0.95).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data

VOCAB, BLOCK, D, HEADS = 32, 16, 48, 4


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(D)
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)
        self.ln2 = nn.LayerNorm(D)
        self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q, k, v = (z.view(b, t, HEADS, D // HEADS).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, D))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, layers=2):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, D)
        self.wpe = nn.Embedding(BLOCK, D)
        self.blocks = nn.ModuleList(Block() for _ in range(layers))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, VOCAB, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as in nanoGPT
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets=None):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


def build_model():
    return GPT()


_seq = _data.lm_tokens(256, seq_len=BLOCK + 1, vocab=VOCAB)
train_loader = _data.batches(_seq[:, :-1], _seq[:, 1:], batch_size=16)


def training_step(model, batch):
    idx, targets = batch
    _, loss = model(idx, targets)
    return loss


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
