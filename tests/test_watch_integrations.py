"""The Lightning and transformers callbacks, end to end on real trainers (CPU, small models)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from watch_helpers import MLP, Faulty, digits

K = 17  # the step at which the NaN is injected


# ----------------------------------------------------------------------------- Lightning
def _lightning_module():
    L = pytest.importorskip("lightning")

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = MLP()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            if self.global_step == getattr(self, "arm_at", -1):
                self.net.faulty.armed.fill_(1.0)
            x, y = batch
            return F.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    return L, Module


def _digits_loader():
    x, y = digits()
    ds = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True,
                                       generator=torch.Generator().manual_seed(0))


def _lightning_fit(module, callback, steps):
    L, _ = _lightning_module()
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
    trainer.fit(module, _digits_loader())
    return trainer


def test_lightning_callback_healthy_fit_passes_and_leaves_no_hook():
    from nndiag.integrations.lightning import NndiagCallback

    _, Module = _lightning_module()
    torch.manual_seed(0)
    module = Module()
    cb = NndiagCallback(log_every=10, sample_every=10)
    trainer = _lightning_fit(module, cb, 60)
    rep = cb.report.subjects[0]
    assert trainer.global_step == 60 and cb.watch.timeline.steps == 60
    assert rep.status.value == "pass", [(r.probe, r.summary) for r in rep.results]
    tl = cb.watch.timeline
    assert all(g > 0 for g, m in zip(tl.grad_norm, tl.measured) if m) and sum(tl.measured) == 12
    assert sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in module.modules()) == 0


def test_lightning_callback_stops_the_trainer_on_a_nan_and_names_the_module():
    from nndiag.integrations.lightning import NndiagCallback

    _, Module = _lightning_module()
    torch.manual_seed(0)
    module = Module()
    module.arm_at = K
    cb = NndiagCallback(log_every=10, on_event=lambda e: None)
    trainer = _lightning_fit(module, cb, 200)
    assert trainer.global_step <= K + 1  # stopped right after the tripping step, not at 200
    nan = cb.report.subjects[0].result("watch.nan")
    assert nan.status.value == "fail" and nan.findings[0].where == "net.faulty (Faulty)"
    assert f"at step {K}" in nan.findings[0].message


# ----------------------------------------------------------------------------- transformers
def _tiny_gpt2():
    tf = pytest.importorskip("transformers")
    cfg = tf.GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    torch.manual_seed(0)
    return tf, tf.GPT2LMHeadModel(cfg)


class _Tokens(torch.utils.data.Dataset):
    """Random token sequences with a learnable rule (next token = current + 1 mod 64)."""

    def __init__(self, n=256, length=16):
        g = torch.Generator().manual_seed(0)
        start = torch.randint(0, 64, (n, 1), generator=g)
        self.ids = (start + torch.arange(length)) % 64

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _hf_train(tmp_path, model, callbacks, steps):
    tf, _ = _tiny_gpt2()
    args = tf.TrainingArguments(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=16,
                                learning_rate=1e-3, report_to=[], save_strategy="no", logging_strategy="no",
                                use_cpu=True, disable_tqdm=True, seed=0, dataloader_num_workers=0)
    trainer = tf.Trainer(model=model, args=args, train_dataset=_Tokens(), callbacks=callbacks)
    trainer.train()
    return trainer


def test_transformers_callback_healthy_gpt2_passes(tmp_path):
    from nndiag.integrations.transformers import NndiagCallback

    _, model = _tiny_gpt2()
    cb = NndiagCallback(log_every=10, sample_every=10)
    trainer = _hf_train(tmp_path, model, [cb], 40)
    rep = cb.report.subjects[0]
    assert trainer.state.global_step == 40 and cb.watch.timeline.steps == 40
    assert all(cb.watch.timeline.has_loss)
    assert rep.status.value == "pass", [(r.probe, r.summary) for r in rep.results]


def test_transformers_callback_stops_training_on_a_nan_in_one_block(tmp_path):
    tf, model = _tiny_gpt2()
    from nndiag.integrations.transformers import NndiagCallback

    mlp = model.transformer.h[1].mlp
    mlp.act = nn.Sequential(mlp.act, Faulty())

    class Arm(tf.TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == K:
                mlp.act[1].armed.fill_(1.0)

    cb = NndiagCallback(log_every=10, on_event=lambda e: None)
    trainer = _hf_train(tmp_path, model, [Arm(), cb], 200)
    assert trainer.state.global_step == K + 1  # the verdict reached the trainer
    f = cb.report.subjects[0].result("watch.nan").findings[0]
    assert f.where == "transformer.h.1.mlp.act.1 (Faulty)" and f"at step {K}" in f.message
