"""A tiny BertForSequenceClassification from a config (random weights), Hugging Face style.

Batches are ``({"input_ids", "attention_mask"}, labels)``; ``training_step`` passes the dict as
keyword arguments with ``labels=`` and returns ``outputs.loss``, as in the transformers docs'
"fine-tune in native PyTorch" loop (AdamW lr 5e-5 there; lr 1e-3 here since the weights start
random and the model is 2 layers of width 64).
"""

import torch
from transformers import BertConfig, BertForSequenceClassification

from reference_models.zoo import _data

VOCAB, SEQ = 60, 16

config = BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=128, max_position_embeddings=SEQ, num_labels=3,
                    pad_token_id=0)


def build_model():
    return BertForSequenceClassification(config)


def _encode(ids, labels, lengths):
    mask = (torch.arange(SEQ)[None, :] < lengths[:, None]).long()
    return {"input_ids": ids, "attention_mask": mask}, labels


_ids, _labels, _lengths = _data.token_classification(384, SEQ, VOCAB, classes=3, pad_id=0)
train_loader = [( _encode(i, y, n)) for (i, n), y in
                ((b[0], b[1]) for b in _data.batches((_ids, _lengths), _labels, batch_size=16))]


def training_step(model, batch):
    inputs, labels = batch
    outputs = model(**inputs, labels=labels)
    return outputs.loss


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
