"""The PyTorch tutorial's LSTMTagger: embeddings -> LSTM -> Linear -> log_softmax, NLLLoss.

From "Sequence Models and Long Short-Term Memory Networks" (pytorch.org tutorials): one sentence
at a time, ``(seq_len,)`` token ids in, ``(seq_len, tagset)`` log-probabilities out, NLLLoss; the
tutorial's toy corpus is replaced by synthetic tagged sequences, and its SGD lr 0.1 over 300
epochs by Adam lr 1e-2 to learn within a few hundred sentences.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data

VOCAB, TAGS = 40, 4


class LSTMTagger(nn.Module):
    def __init__(self, embedding_dim=16, hidden_dim=32, vocab_size=VOCAB, tagset_size=TAGS):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim)
        self.hidden2tag = nn.Linear(hidden_dim, tagset_size)

    def forward(self, sentence):
        embeds = self.word_embeddings(sentence)
        lstm_out, _ = self.lstm(embeds.view(len(sentence), 1, -1))
        tag_space = self.hidden2tag(lstm_out.view(len(sentence), -1))
        return F.log_softmax(tag_space, dim=1)


def build_model():
    return LSTMTagger()


_ids, _tags = _data.token_tagging(256, seq_len=10, vocab=VOCAB, tags=TAGS)
train_loader = list(zip(_ids, _tags))

loss_function = nn.NLLLoss()
loss_fn = loss_function


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-2)
