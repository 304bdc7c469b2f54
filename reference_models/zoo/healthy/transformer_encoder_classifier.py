"""Token-sequence classifier on nn.TransformerEncoder with a padding mask and mean pooling.

Embedding + learned positions -> ``nn.TransformerEncoder`` (2 layers, batch_first, pre-norm) ->
masked mean over tokens -> Linear; inputs are ``(ids, padding_mask)`` passed positionally, as in
the PyTorch "nn.Transformer" tutorials. AdamW lr 1e-3, CrossEntropyLoss.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data

VOCAB, SEQ, D = 50, 16, 32


class EncoderClassifier(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(1, SEQ, D))
        layer = nn.TransformerEncoderLayer(D, nhead=4, dim_feedforward=64, dropout=0.1,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(D, classes)

    def forward(self, ids, pad_mask):
        h = self.encoder(self.embed(ids) + self.pos, src_key_padding_mask=pad_mask)
        keep = (~pad_mask).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))


def build_model():
    return EncoderClassifier()


_ids, _y, _len = _data.token_classification(512, SEQ, VOCAB, classes=3, pad_id=0)
_mask = torch.arange(SEQ)[None, :] >= _len[:, None]
train_loader = _data.batches((_ids, _mask), _y, batch_size=32)

loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
