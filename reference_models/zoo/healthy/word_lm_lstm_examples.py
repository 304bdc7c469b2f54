"""Word-level LSTM language model as in pytorch/examples word_language_model.

RNNModel (Embedding -> 2-layer LSTM -> Linear decoder, uniform(-0.1, 0.1) init, dropout 0.2)
returning ``log_softmax`` of the decoder output flattened to ``(seq_len * batch, ntoken)``,
NLLLoss against ``targets.view(-1)``; data in the example's time-major ``(bptt, batch)`` layout;
``train_step`` is the example's loop body: fresh hidden state, forward, backward,
``clip_grad_norm_(0.25)``, then plain SGD with lr 20 (the example's default).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data

NTOKEN, BPTT, BATCH = 32, 16, 10


class RNNModel(nn.Module):
    def __init__(self, ntoken=NTOKEN, ninp=32, nhid=32, nlayers=2, dropout=0.2):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nhid, self.nlayers = nhid, nlayers
        self.init_weights()

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                weight.new_zeros(self.nlayers, bsz, self.nhid))


def build_model():
    return RNNModel()


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data[:nbatch * bsz].view(bsz, -1).t().contiguous()


def get_batch(source, i):
    seq_len = min(BPTT, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


_corpus = _data.lm_tokens(40, seq_len=101, vocab=NTOKEN).flatten()
_train = batchify(_corpus, BATCH)
train_loader = [get_batch(_train, i) for i in range(0, _train.size(0) - 1, BPTT)]

criterion = nn.NLLLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=20.0)


def train_step(model, optimizer, batch):
    data, targets = batch
    hidden = model.init_hidden(data.size(1))
    model.zero_grad()
    output, hidden = model(data, hidden)
    loss = criterion(output, targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
    optimizer.step()
    return loss.item()
