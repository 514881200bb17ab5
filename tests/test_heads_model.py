"""The fusion head: padding never changes an output, sizes are configurable, variants run."""

from __future__ import annotations

import pytest
import torch

from sercache.heads.fit.model import AttentiveStatsPool, FusionHead, HeadSpec, LayerMix, masked_mean

torch.set_num_threads(1)


def batch(frame_shape_a=(12,), frame_shape_t=(6,), lengths_a=(9, 4, 7), lengths_t=(3, 5, 2), T=11, Tt=6, fill=0.0):
    g = torch.Generator().manual_seed(0)
    B = len(lengths_a)
    xa = torch.randn(B, T, *frame_shape_a, generator=g)
    xt = torch.randn(B, Tt, *frame_shape_t, generator=g)
    ma = torch.arange(T)[None] < torch.tensor(lengths_a)[:, None]
    mt = torch.arange(Tt)[None] < torch.tensor(lengths_t)[:, None]
    shape_a = ma.shape + (1,) * len(frame_shape_a)
    shape_t = mt.shape + (1,) * len(frame_shape_t)
    xa = torch.where(ma.view(shape_a), xa, torch.full_like(xa, fill))
    xt = torch.where(mt.view(shape_t), xt, torch.full_like(xt, fill))
    return {"audio": (xa, ma), "text": (xt, mt)}


def garbage(inputs):
    """Same inputs, padded positions replaced by huge values, inf and NaN."""
    out = {}
    for k, (x, m) in inputs.items():
        junk = torch.full_like(x, 1e30)
        junk[..., 0] = float("inf")
        junk[..., -1] = float("nan")
        shape = m.shape + (1,) * (x.dim() - 2)
        out[k] = (torch.where(m.view(shape), x, junk), m)
    return out


def test_masked_mean_exact():
    x = torch.randn(2, 5, 3)
    m = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    x2 = x.clone()
    x2[0, 2:] = float("nan")
    expected = torch.stack([x[0, :2].mean(0), x[1].mean(0)])
    torch.testing.assert_close(masked_mean(x2, m), expected)


def test_attentive_pool_ignores_padding():
    pool = AttentiveStatsPool(4)
    x = torch.randn(2, 6, 4)
    m = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6], dtype=torch.bool)
    x2 = x.clone()
    x2[0, 3:] = 1e6
    torch.testing.assert_close(pool(x, m), pool(x2, m))
    torch.testing.assert_close(pool(x[:1, :3], m[:1, :3]), pool(x, m)[:1])


@pytest.mark.parametrize("fusion", ["early", "late", "deep", "tensor", "lowrank"])
@pytest.mark.parametrize("pooling,stride", [("mean", 1), ("attentive", 1), ("mean", 3)])
def test_padding_never_changes_outputs(fusion, pooling, stride):
    spec = HeadSpec(inputs={"audio": [12], "text": [6]}, n_classes=8, task="both", aux="gender", fusion=fusion,
                    hidden=16, d_model=8, layers=2, heads=2, ff_dim=16, pooling=pooling, frame_stride=stride)
    model = FusionHead(spec).eval()
    clean = batch()
    with torch.no_grad():
        a, b = model(clean), model(garbage(clean))
        # and the same utterance alone, with no padding at all, gives the same output
        single = {k: (x[:1, :int(m[0].sum())], m[:1, :int(m[0].sum())]) for k, (x, m) in clean.items()}
        c = model(single)
    for key in a:
        assert torch.isfinite(a[key]).all()
        torch.testing.assert_close(a[key], b[key])
        torch.testing.assert_close(a[key][:1], c[key], rtol=1e-4, atol=1e-5)


def test_padding_invariance_holds_for_gradients():
    spec = HeadSpec(inputs={"audio": [12]}, n_classes=4, hidden=16, d_model=8, ff_dim=16, dropout=0.0)
    model = FusionHead(spec)
    inputs = {"audio": batch()["audio"]}
    grads = []
    for x in (inputs, garbage(inputs)):
        model.zero_grad()
        model(x)["logits"].sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.isfinite(grads[1]).all()
    torch.testing.assert_close(grads[0], grads[1])


def test_multi_layer_input_uses_learned_mix():
    spec = HeadSpec(inputs={"audio": [3, 12]}, n_classes=8, hidden=16, d_model=8, ff_dim=16)
    model = FusionHead(spec).eval()
    inputs = {"audio": batch(frame_shape_a=(3, 12))["audio"]}
    assert model(inputs)["logits"].shape == (3, 8)
    assert model.layer_weights()["audio"] == pytest.approx([1 / 3] * 3)
    mix = LayerMix(3)
    x = torch.randn(2, 4, 3, 5)
    torch.testing.assert_close(mix(x), x.mean(2))


def test_sizes_are_configurable_and_avd_range():
    spec = HeadSpec(inputs={"text": [6]}, n_classes=5, task="avd", hidden=24, d_model=12, layers=3, heads=3, ff_dim=20)
    model = FusionHead(spec)
    layers = model.encoders["text"].encoder.layers
    assert len(layers) == 3 and layers[0].self_attn.num_heads == 3 and layers[0].linear1.out_features == 20
    model.avd_low.copy_(torch.tensor([1.5, 2.0, 1.0]))
    model.avd_high.copy_(torch.tensor([6.5, 6.0, 7.0]))
    out = model({"text": batch()["text"]})["avd"]
    assert out.shape == (3, 3)
    assert (out >= torch.tensor([1.5, 2.0, 1.0])).all() and (out <= torch.tensor([6.5, 6.0, 7.0])).all()
    assert "logits" not in model({"text": batch()["text"]})


def test_cosine_classifier_outputs_cosines():
    spec = HeadSpec(inputs={"audio": [12]}, n_classes=4, hidden=16, d_model=8, ff_dim=16, cosine=True)
    out = FusionHead(spec).eval()({"audio": batch()["audio"]})["logits"]
    assert (out.abs() <= 1 + 1e-5).all()


def test_strided_mean_is_the_mean_of_valid_frames_per_window():
    from sercache.heads.fit.model import strided_mean

    x = torch.randn(2, 7, 3)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3], dtype=torch.bool)
    x = torch.where(mask[..., None], x, torch.zeros(()))
    out, m = strided_mean(x, mask, 3)
    assert out.shape == (2, 3, 3) and m.tolist() == [[True] * 3, [True, True, False]]
    torch.testing.assert_close(out[0, 2], x[0, 6])  # the last window holds one frame
    torch.testing.assert_close(out[1, 1], x[1, 3])  # frames 4, 5 are padding
    torch.testing.assert_close(out[0, 0], x[0, :3].mean(0))
    same, same_mask = strided_mean(x, mask, 1)
    assert same is x and same_mask is mask


def test_frame_stride_shortens_the_audio_sequence_only():
    spec = HeadSpec(inputs={"audio": [12], "text": [6]}, n_classes=8, hidden=16, d_model=8, ff_dim=16, frame_stride=3)
    model = FusionHead(spec).eval()
    clean = batch()
    with torch.no_grad():
        audio = model.encoders["audio"].sequence(*clean["audio"])[1]
        text = model.encoders["text"].sequence(*clean["text"])[1]
    assert audio.shape == (3, 4) and audio.sum(1).tolist() == [3, 2, 3]  # ceil(9/3), ceil(4/3), ceil(7/3)
    assert text.shape == (3, 6) and text.sum(1).tolist() == [3, 5, 2]  # text tokens are never averaged


@pytest.mark.parametrize("fusion", ["early", "late", "deep", "tensor", "lowrank"])
def test_modality_dropout_leaves_a_modality_out_in_training_only(fusion):
    spec = HeadSpec(inputs={"audio": [12], "text": [6]}, n_classes=8, fusion=fusion, hidden=16, d_model=8, ff_dim=16,
                    dropout=0.0, modality_dropout=0.9)
    model = FusionHead(spec)
    clean = batch(lengths_a=(9, 4, 7, 5, 8, 6), lengths_t=(3, 5, 2, 4, 1, 6))
    torch.manual_seed(3)
    keep = model.train()._kept_modalities(clean["audio"][0])
    assert keep.any(1).all() and (~keep).any()  # never both left out; p = 0.9 leaves some out
    shaken = {"audio": (clean["audio"][0] * 5 + 1, clean["audio"][1]), "text": (clean["text"][0] * 5 + 1,
                                                                               clean["text"][1])}
    outs = []
    for inputs in (clean, shaken):
        torch.manual_seed(3)  # the same rows leave out the same modality
        with torch.no_grad():
            outs.append(model(inputs)["logits"])
    # a row that kept only modality m gives the same output when the other modality changes
    for i, m in enumerate(("audio", "text")):
        other = {"audio": "text", "text": "audio"}[m]
        mixed = {m: clean[m], other: shaken[other]}
        torch.manual_seed(3)
        with torch.no_grad():
            partial = model(mixed)["logits"]
        only = ~keep[:, 1 - i]
        torch.testing.assert_close(partial[only], outs[0][only])
    model.eval()
    with torch.no_grad():
        plain = FusionHead(HeadSpec(**{**spec.__dict__, "modality_dropout": 0.0}))
        plain.load_state_dict(model.state_dict())
        torch.testing.assert_close(model(clean)["logits"], plain.eval()(clean)["logits"])
