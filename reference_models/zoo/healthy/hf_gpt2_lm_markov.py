"""A tiny GPT2LMHeadModel from a config (random weights) that computes its own LM loss.

``model(input_ids=ids, labels=ids).loss``: transformers shifts the labels inside the model, as in
the run_clm examples; AdamW lr 1e-3 with weight decay 0.01 (a small, randomly initialised model);
data: sequences from a fixed first-order Markov chain.
"""

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from reference_models.zoo import _data

config = GPT2Config(vocab_size=32, n_positions=32, n_embd=48, n_layer=2, n_head=2, bos_token_id=0,
                    eos_token_id=0)


def build_model():
    return GPT2LMHeadModel(config)


_seq = _data.lm_tokens(256, seq_len=16, vocab=32)
train_loader = [{"input_ids": _seq[i:i + 16]} for i in range(0, len(_seq), 16)]


def training_step(model, batch):
    return model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
