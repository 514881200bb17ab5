"""Tensor fusion (TFN) and low-rank fusion (LMF): the formulas, padding invariance, training, fallback."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from test_heads_model import batch, garbage

from sercache.heads import HeadConfig, train
from sercache.heads.fit.checkpoint import load_head
from sercache.heads.fit.model import FusionHead, HeadSpec
from sercache.testing import in_memory_pool, make_synthetic_corpus

torch.set_num_threads(1)


def spec(fusion: str, **kw) -> HeadSpec:
    base = dict(inputs={"audio": [12], "text": [6]}, n_classes=5, fusion=fusion, hidden=16, d_model=8, layers=1,
                heads=2, ff_dim=16, dropout=0.0, fusion_rank=3, fusion_dim=4)
    return HeadSpec(**{**base, **kw})


def pooled(model: FusionHead, inputs) -> dict[str, torch.Tensor]:
    return {m: model.encoders[m].pooled(*model.encoders[m].sequence(*inputs[m])) for m in model.names}


def one(z: torch.Tensor) -> torch.Tensor:
    return F.pad(z, (0, 1), value=1.0)


def test_tensor_fusion_is_the_augmented_outer_product():
    torch.manual_seed(0)
    model = FusionHead(spec("tensor")).eval()
    assert model.fusion == "tensor" and model.fuse.out_dim == 5 * 5
    inputs = batch()
    with torch.no_grad():
        p = pooled(model, inputs)
        proj_a, proj_t = model.fuse.proj
        za = one(p["audio"] @ proj_a.weight.T + proj_a.bias)
        zt = one(p["text"] @ proj_t.weight.T + proj_t.bias)
        tensor = torch.einsum("bi,bj->bij", za, zt).reshape(len(za), -1)  # row-major: entry (i, j) at i * 5 + j
        trunk = model.heads.trunk[0]
        z = torch.relu(tensor @ trunk.weight.T + trunk.bias)
        expected = model.heads.classes(z)
        got = model(inputs)["logits"]
    torch.testing.assert_close(got, expected)
    # the constant 1 keeps the unimodal vectors and 1 itself inside the tensor
    torch.testing.assert_close(tensor.view(-1, 5, 5)[:, :, -1], za)
    torch.testing.assert_close(tensor.view(-1, 5, 5)[:, -1, :], zt)


def test_tensor_fusion_without_projection():
    model = FusionHead(spec("tensor", fusion_dim=0)).eval()
    assert model.fuse.proj is None and model.fuse.out_dim == (8 + 1) * (8 + 1)
    assert model(batch())["logits"].shape == (3, 5)


def test_lowrank_fusion_is_the_explicit_sum_of_products():
    torch.manual_seed(1)
    r = 3
    model = FusionHead(spec("lowrank", fusion_rank=r)).eval()
    with torch.no_grad():
        model.fuse.bias.normal_()  # a non-zero bias, so that it is tested too
        inputs = batch()
        p = pooled(model, inputs)
        wa, wt = model.fuse.factors
        assert wa.shape == (r, 8 + 1, 16) and wt.shape == (r, 8 + 1, 16)
        rows = []
        for b in range(3):
            za, zt = one(p["audio"][b]), one(p["text"][b])
            h = model.fuse.bias.clone()
            for i in range(r):
                h += torch.mv(wa[i].T, za) * torch.mv(wt[i].T, zt)
            rows.append(h)
        fused = torch.stack(rows)
        torch.testing.assert_close(model.fuse([p["audio"], p["text"]]), fused)
        trunk = model.heads.trunk[0]
        expected = model.heads.classes(torch.relu(fused @ trunk.weight.T + trunk.bias))
        torch.testing.assert_close(model(inputs)["logits"], expected)


def test_lowrank_equals_tensor_fusion_with_a_rank_r_weight():
    """LMF is TFN's tensor contracted with W = sum_i W_a^(i) (x) W_t^(i): the same map, never formed."""
    torch.manual_seed(2)
    model = FusionHead(spec("lowrank")).eval()
    with torch.no_grad():
        p = pooled(model, batch())
        za, zt = one(p["audio"]), one(p["text"])
        wa, wt = model.fuse.factors
        weight = torch.einsum("rih,rjh->ijh", wa, wt)  # the full [9, 9, 16] weight tensor
        full = torch.einsum("bi,bj,ijh->bh", za, zt, weight) + model.fuse.bias
        torch.testing.assert_close(model.fuse([p["audio"], p["text"]]), full)


@pytest.mark.parametrize("fusion", ["tensor", "lowrank"])
def test_gradients_ignore_padding(fusion):
    model = FusionHead(spec(fusion))
    grads = []
    for x in (batch(), garbage(batch())):
        model.zero_grad()
        model(x)["logits"].sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.isfinite(grads[1]).all()
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("fusion", ["tensor", "lowrank"])
def test_single_modality_falls_back_to_early_fusion(fusion):
    torch.manual_seed(3)
    one_input = FusionHead(spec(fusion, inputs={"audio": [12]}))
    torch.manual_seed(3)
    early = FusionHead(spec("early", inputs={"audio": [12]}))
    assert one_input.fusion == "early" and not hasattr(one_input, "fuse")
    assert one_input.state_dict().keys() == early.state_dict().keys()
    x = {"audio": batch()["audio"]}
    torch.testing.assert_close(one_input.eval()(x)["logits"], early.eval()(x)["logits"])


@pytest.mark.parametrize("fusion", ["tensor", "lowrank"])
def test_a_few_steps_lower_the_loss(fusion):
    """Class carried jointly by the two modalities (sign agreement): a multiplicative interaction."""
    torch.manual_seed(4)
    model = FusionHead(spec(fusion, n_classes=2, layers=0))
    g = torch.Generator().manual_seed(5)
    B, T = 64, 5
    sa, st = torch.randint(0, 2, (B,), generator=g) * 2 - 1, torch.randint(0, 2, (B,), generator=g) * 2 - 1
    xa = 0.3 * torch.randn(B, T, 12, generator=g) + sa[:, None, None].float()
    xt = 0.3 * torch.randn(B, T, 6, generator=g) + st[:, None, None].float()
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = torch.arange(T)[None] < lengths[:, None]
    inputs = {"audio": (xa, mask), "text": (xt, mask)}
    y = (sa == st).long()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(inputs)["logits"], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0]


def test_old_checkpoint_specs_still_load():
    """Specs written before fusion_rank / fusion_dim existed rebuild with the defaults."""
    old = {k: v for k, v in asdict(spec("early")).items() if k not in ("fusion_rank", "fusion_dim")}
    rebuilt = HeadSpec(**json.loads(json.dumps(old)))
    assert rebuilt.fusion_rank == 4 and rebuilt.fusion_dim == 32
    FusionHead(rebuilt).load_state_dict(FusionHead(spec("early")).state_dict())


@pytest.mark.parametrize("fusion", ["tensor", "lowrank"])
def test_trains_end_to_end_and_reloads(tmp_path, fusion):
    torch.manual_seed(0)
    corpus = make_synthetic_corpus(tmp_path / "c", n_train=64, n_dev=32, n_test=8, audio_dim=8, text_dim=6,
                                   mean_seconds=0.2, std_seconds=0.05, ox_fraction=0.0, write_features=False)
    pool = in_memory_pool(corpus, torch.device("cpu"), 8, 6, signal=2.0, mean_frames=8)
    cfg = HeadConfig(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                     labels=str(corpus.consensus), out=str(tmp_path / "run"), hidden=16, d_model=8, ff_dim=16,
                     layers=1, batch_size=16, lr=3e-3, max_epochs=2, patience=0, progress=False, fusion=fusion,
                     fusion_rank=2, fusion_dim=4)
    result = train(cfg, pool=pool, verbose=False)
    epochs = json.loads((result.out / "epochs.json").read_text())
    assert all(e["train_loss"] == e["train_loss"] for e in epochs)  # finite, not NaN
    model, info = load_head(result.out / "best.safetensors")
    assert model.fusion == fusion and model.spec.fusion_rank == 2 and model.spec.fusion_dim == 4
    assert info["config"]["fusion"] == fusion


def test_config_rejects_bad_fusion_sizes():
    from sercache.heads.errors import HeadError

    base = dict(features=["a"], fusion="lowrank")
    with pytest.raises(HeadError, match="fusion-rank"):
        HeadConfig(**base, fusion_rank=0).validate()
    with pytest.raises(HeadError, match="fusion-dim"):
        HeadConfig(**base, fusion_dim=-1).validate()
    HeadConfig(**base).validate()
