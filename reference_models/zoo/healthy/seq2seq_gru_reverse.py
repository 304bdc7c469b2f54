"""GRU encoder-decoder (seq2seq) with teacher forcing, learning to reverse a token sequence.

The encoder's final hidden state initialises the decoder, which reads the target shifted right
(start token 0) and predicts every next token; as in the PyTorch "NLP From Scratch: translation
with a sequence to sequence network" tutorial (without attention). Inputs are ``(src, tgt_in)``,
logits are ``(batch, vocab, len)`` for CrossEntropyLoss. Adam lr 3e-3.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data

VOCAB, HIDDEN = 12, 64


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_embed = nn.Embedding(VOCAB, 32)
        self.tgt_embed = nn.Embedding(VOCAB, 32)
        self.encoder = nn.GRU(32, HIDDEN, batch_first=True)
        self.decoder = nn.GRU(32, HIDDEN, batch_first=True)
        self.out = nn.Linear(HIDDEN, VOCAB)

    def forward(self, src, tgt_in):
        _, h = self.encoder(self.src_embed(src))
        dec, _ = self.decoder(self.tgt_embed(tgt_in), h)
        return self.out(dec).transpose(1, 2)


def build_model():
    return Seq2Seq()


_src, _tgt = _data.reverse_pairs(1024, seq_len=5, vocab=VOCAB)
train_loader = _data.batches((_src, _tgt[:, :-1]), _tgt[:, 1:], batch_size=32)

loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=3e-3)
