"""A tiny DistilBertForSequenceClassification from a config, with the loss taken on ``.logits``.

The model is called with the tokenizer-style dict as keyword arguments; ``loss_fn`` applies
CrossEntropyLoss to ``outputs.logits``, the pattern of custom PyTorch loops around transformers
models (e.g. class-weighted losses). Random init, Adam lr 1e-3.
"""

import torch
import torch.nn as nn
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from reference_models.zoo import _data

VOCAB, SEQ = 60, 16

config = DistilBertConfig(vocab_size=VOCAB, dim=64, n_layers=2, n_heads=2, hidden_dim=128,
                          max_position_embeddings=SEQ, num_labels=2, pad_token_id=0)


def build_model():
    return DistilBertForSequenceClassification(config)


_ids, _labels, _lengths = _data.token_classification(384, SEQ, VOCAB, classes=2, pad_id=0)
_mask = (torch.arange(SEQ)[None, :] < _lengths[:, None]).long()
train_loader = [({"input_ids": _ids[i:i + 16], "attention_mask": _mask[i:i + 16]}, _labels[i:i + 16])
                for i in range(0, len(_labels), 16)]

_ce = nn.CrossEntropyLoss()


def loss_fn(outputs, labels):
    return _ce(outputs.logits, labels)


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
