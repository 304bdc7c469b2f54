"""Character-level RNN sequence classifier with a small learning rate (PyTorch tutorial style).

In the spirit of "NLP From Scratch: Classifying Names with a Character-Level RNN": one-hot
characters -> ``nn.RNN`` (tanh) -> last hidden state -> Linear -> LogSoftmax, NLLLoss; batches of
32 padded-to-equal-length "names" and Adam with a small lr (5e-4).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data

N_LETTERS, N_CATEGORIES = 20, 3


class CharRNN(nn.Module):
    def __init__(self, input_size=N_LETTERS, hidden_size=64, output_size=N_CATEGORIES):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)
        self.h2o = nn.Linear(hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, line_tensor):
        _, hidden = self.rnn(line_tensor)
        return self.softmax(self.h2o(hidden[0]))


def build_model():
    return CharRNN()


_ids, _y = _data.token_classification(512, 10, N_LETTERS, classes=N_CATEGORIES)
_onehot = F.one_hot(_ids, N_LETTERS).float()
train_loader = _data.loader(_onehot, _y, batch_size=32)

criterion = nn.NLLLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=5e-4)
