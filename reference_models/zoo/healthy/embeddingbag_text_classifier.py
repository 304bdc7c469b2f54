"""Text classification with ``nn.EmbeddingBag`` over concatenated tokens and offsets.

The PyTorch "Text classification with the torchtext library" tutorial's TextClassificationModel:
EmbeddingBag(mean) + Linear with uniform(-0.5, 0.5) init, batches built by a collate function as
``((text, offsets), label)`` (the inputs are a tuple), SGD lr 5 as in the tutorial, with
gradient clipping at 0.1 in ``train_step`` as the tutorial's loop does.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data

VOCAB = 80


class TextClassificationModel(nn.Module):
    def __init__(self, vocab_size=VOCAB, embed_dim=32, num_class=4):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, sparse=False)
        self.fc = nn.Linear(embed_dim, num_class)
        self.init_weights()

    def init_weights(self):
        initrange = 0.5
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.fc.weight.data.uniform_(-initrange, initrange)
        self.fc.bias.data.zero_()

    def forward(self, text, offsets):
        return self.fc(self.embedding(text, offsets))


def build_model():
    return TextClassificationModel()


def collate_batch(samples):
    """Variable-length token lists -> (concatenated text, offsets), labels."""
    labels, texts, offsets = [], [], [0]
    for ids, length, label in samples:
        texts.append(ids[:length])
        offsets.append(int(length))
        labels.append(label)
    offsets = torch.tensor(offsets[:-1]).cumsum(dim=0)
    return (torch.cat(texts), offsets), torch.tensor(labels)


_ids, _y, _len = _data.token_classification(512, 24, VOCAB, classes=4, pad_id=0)
_samples = list(zip(_ids, _len, _y.tolist()))
train_loader = torch.utils.data.DataLoader(_samples, batch_size=16, shuffle=True,
                                           collate_fn=collate_batch,
                                           generator=torch.Generator().manual_seed(0))

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=5.0)


def train_step(model, optimizer, batch):
    (text, offsets), label = batch
    optimizer.zero_grad()
    loss = criterion(model(text, offsets), label)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    optimizer.step()
    return loss.item()
