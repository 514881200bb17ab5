"""A trained head as an ONNX graph (`export-head --onnx`) and the onnxruntime engine of `predict --engine onnx`.

Only the head goes to ONNX: the encoders, ASR and AEC stay PyTorch, and the graph takes what the store
caches. Inputs, per modality the head uses (audio first, then text): `<m>_frames` float32 [batch, frames,
*frame_shape] and `<m>_mask` bool [batch, frames] (True at valid frames; padded frames may hold anything,
as in the torch head). Batch and frame axes are dynamic. Outputs: `probs` [batch, classes] (the class
probabilities as the loss trained them: softmax, or a sigmoid per class for WBCE), `avd` [batch, 3] and
`gender` [batch, 2] where the head has them; all float32.

Two parts of the torch head do not trace with dynamic frame axes under torch's TorchScript exporter, so the
graph is traced from a copy with equivalent parts: torch's TransformerEncoder (its attention bakes the traced
sequence length into reshapes) is replaced by the same computation on the same weights, and the strided mean
of `--frame-stride` (a Python `if` on the padding, decided once at trace time) by average pooling with
ceil mode. The export then checks the graph against the torch head on inputs of other batch and frame sizes
than the traced ones and refuses it beyond 1e-4. Probes (`--head probe`) export too: masked mean in float64,
standardisation, the linear layer and softmax.

The graph records (ONNX metadata, readable with `InferenceSession.get_modelmeta()`) the class order and the
SHA-256 of the checkpoint it was made from; the engine refuses a graph that no longer matches its checkpoint.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import HeadError
from ..fit import model as head_model
from ..fit.losses import probabilities
from ..fit.probe import ProbeHead, load_checkpoint

ONNX_FILE = "head.onnx"
OPSET = 17
OUTPUTS = ("probs", "avd", "gender")
PARITY = 1e-4  # largest probability difference to the torch head the export accepts


def input_names(modalities: Sequence[str]) -> list[str]:
    """The graph's inputs in order: frames then mask of each modality."""
    return [n for m in modalities for n in (f"{m}_frames", f"{m}_mask")]


# ----------------------------------------------------------------------------------- traceable copy
class OnnxEncoderLayer(nn.Module):
    """nn.TransformerEncoderLayer's eval-mode computation on its own weights, written with reshapes that keep
    the batch and sequence axes symbolic (torch's attention does not under the TorchScript exporter)."""

    def __init__(self, layer: nn.TransformerEncoderLayer):
        super().__init__()
        self.layer = layer

    def attend(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        a = self.layer.self_attn
        heads, width = a.num_heads, a.embed_dim // a.num_heads
        q, k, v = (t.unflatten(-1, (heads, width)).transpose(1, 2)
                   for t in F.linear(x, a.in_proj_weight, a.in_proj_bias).chunk(3, -1))
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(width))
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        return a.out_proj((scores.softmax(-1) @ v).transpose(1, 2).flatten(2))

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        layer = self.layer

        def feed(h: torch.Tensor) -> torch.Tensor:
            return layer.linear2(layer.activation(layer.linear1(h)))

        if layer.norm_first:
            x = x + self.attend(layer.norm1(x), pad)
            return x + feed(layer.norm2(x))
        x = layer.norm1(x + self.attend(x, pad))
        return layer.norm2(x + feed(x))


class OnnxEncoder(nn.Module):
    """Drop-in for nn.TransformerEncoder (same call signature) built from its layers."""

    def __init__(self, encoder: nn.TransformerEncoder):
        super().__init__()
        self.layers = nn.ModuleList(OnnxEncoderLayer(layer) for layer in encoder.layers)
        self.norm = encoder.norm

    def forward(self, src: torch.Tensor, mask: Any = None, src_key_padding_mask: torch.Tensor | None = None,
                is_causal: Any = None) -> torch.Tensor:
        pad = src_key_padding_mask if src_key_padding_mask is not None else torch.zeros_like(src[..., 0], dtype=bool)
        for layer in self.layers:
            src = layer(src, pad)
        return self.norm(src) if self.norm is not None else src


def pooled_strided_mean(x: torch.Tensor, mask: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """model.strided_mean as average pooling (ceil mode covers the last, partial group): the same means with
    no Python decision on the sequence length. Both pools divide by the same window size, so their ratio is
    the mean over the valid frames; padded frames are already zero."""
    if stride <= 1:
        return x, mask
    total = F.avg_pool1d(x.transpose(1, 2), stride, stride, ceil_mode=True)
    count = F.avg_pool1d(mask[:, None, :].to(x.dtype), stride, stride, ceil_mode=True)
    return (total / count.clamp_min(1e-6)).transpose(1, 2), count[:, 0] > 0


@contextmanager
def traceable_strides() -> Iterator[None]:
    """ModalityEncoder.sequence calls the module's strided_mean: the pooled form while tracing, restored after."""
    saved = head_model.strided_mean
    head_model.strided_mean = pooled_strided_mean
    try:
        yield
    finally:
        head_model.strided_mean = saved


def traceable(model: head_model.FusionHead) -> head_model.FusionHead:
    """A copy of the head with every nn.TransformerEncoder replaced by OnnxEncoder (the same weights)."""
    twin = copy.deepcopy(model).eval()
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.TransformerEncoder):
                setattr(parent, name, OnnxEncoder(child))
    return twin


# ----------------------------------------------------------------------------------- graphs
class HeadGraph(nn.Module):
    """A FusionHead with flat tensor inputs and the probabilities `infer` reports as outputs."""

    def __init__(self, model: head_model.FusionHead, loss: str, am_scale: float):
        super().__init__()
        self.model, self.loss, self.am_scale = model, loss, am_scale
        self.names = list(model.names)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = {m: (tensors[2 * i], tensors[2 * i + 1]) for i, m in enumerate(self.names)}
        out = probabilities(self.model(inputs), self.loss, self.am_scale)
        return tuple(out[k] for k in OUTPUTS if k in out)


class ProbeGraph(nn.Module):
    """ProbeHead.predict_proba of `pooled_inputs`: masked mean over frames (and over layers), float64."""

    def __init__(self, probe: ProbeHead):
        super().__init__()
        self.names = list(probe.modalities)
        for k in ("coef", "intercept", "mean", "std"):
            self.register_buffer(k, torch.as_tensor(np.asarray(getattr(probe, k), np.float64)))

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor]:
        parts = []
        for i in range(len(self.names)):
            x, mask = tensors[2 * i].double(), tensors[2 * i + 1]
            keep = mask.reshape(mask.shape + (1,) * (x.dim() - 2))
            total = torch.where(keep, x, torch.zeros((), dtype=x.dtype)).sum(1)
            if total.dim() == 3:  # [B, layers, D]: the plain average over layers
                total = total.mean(1)
            parts.append(total / mask.sum(1, keepdim=True).clamp_min(1).double())
        z = ((torch.cat(parts, -1) - self.mean) / self.std) @ self.coef.t() + self.intercept
        return (torch.softmax(z, -1).float(),)


def frame_shapes(model: Any, info: dict[str, Any]) -> dict[str, list[int]]:
    """modality -> frame shape: the head's spec, or for a probe its feature sets' recorded shapes (several sets
    of one modality stack as layers, as FeaturePool stacks them)."""
    if not getattr(model, "is_probe", False):
        return {m: list(model.spec.inputs[m]) for m in model.names}
    shapes = {}
    for m in model.modalities:
        sets = [list(p.get("frame_shape") or []) for p in info.get("features", {}).get(m, [])]
        if not sets or not all(sets):
            raise HeadError(f"probe: the frame shape of its {m} features is not recorded; cannot export to ONNX")
        shapes[m] = sets[0] if len(sets) == 1 else [sum(s[0] if len(s) == 2 else 1 for s in sets), sets[0][-1]]
    return shapes


def example_inputs(shapes: dict[str, list[int]], batch: int, frames: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Random frames with ragged masks (every row keeps at least one frame), for tracing and checking."""
    g = torch.Generator().manual_seed(seed)
    out: list[torch.Tensor] = []
    for i, shape in enumerate(shapes.values()):
        T = frames + 3 * i
        lengths = torch.randint(1, T + 1, (batch,), generator=g)
        lengths[0] = T
        out += [torch.randn((batch, T, *shape), generator=g), torch.arange(T)[None, :] < lengths[:, None]]
    return tuple(out)


# ----------------------------------------------------------------------------------- export
def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def graphs(checkpoint: Path) -> tuple[nn.Module, nn.Module, dict[str, Any], dict[str, list[int]]]:
    """(what is traced, the torch reference it must agree with, the checkpoint's info, frame shapes)."""
    model, info = load_checkpoint(checkpoint)
    shapes = frame_shapes(model, info)
    if getattr(model, "is_probe", False):
        graph = ProbeGraph(model)
        return graph, graph, info, shapes
    cfg = info.get("config", {})
    loss, scale = cfg.get("loss", "ce"), float(cfg.get("am_scale", 30.0))
    return HeadGraph(traceable(model), loss, scale).eval(), HeadGraph(model, loss, scale).eval(), info, shapes


def output_names(reference: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[str]:
    """The outputs a graph has, in OUTPUTS order (a probe has class probabilities only)."""
    if isinstance(reference, ProbeGraph):
        return ["probs"]
    out = probabilities(reference.model({m: (inputs[2 * i], inputs[2 * i + 1])
                                         for i, m in enumerate(reference.names)}), reference.loss, reference.am_scale)
    return [k for k in OUTPUTS if k in out]


def export_onnx(checkpoint: str | Path, to: str | Path) -> dict[str, Any]:
    """Write the head of `checkpoint` as an ONNX graph at `to`, checked against the torch head; returns what the
    graph records (inputs, outputs, classes, checkpoint hash) for the model card."""
    import warnings

    try:
        import onnx  # noqa: F401 (torch's exporter writes through it)
    except ImportError:
        raise HeadError("--onnx needs the onnx package (pip install 'sercache[onnx]')") from None
    checkpoint, to = Path(checkpoint), Path(to)
    graph, reference, info, shapes = graphs(checkpoint)
    inputs = example_inputs(shapes, 2, 8, 0)
    with torch.no_grad():
        outputs = output_names(reference, inputs)
    names = input_names(list(shapes))
    axes = {n: {0: "batch", 1: f"{n.rsplit('_', 1)[0]}_frames"} for n in names}
    axes.update({o: {0: "batch"} for o in outputs})
    with traceable_strides(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on Python-level checks; the parity check below decides
        torch.onnx.export(graph, inputs, str(to), input_names=names, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)
    described = describe(shapes, outputs, info, checkpoint)
    _write_metadata(to, described)
    try:
        described["parity"] = check_parity(to, reference, shapes)
    except HeadError:
        to.unlink(missing_ok=True)
        raise
    return described


def describe(shapes: dict[str, list[int]], outputs: list[str], info: dict[str, Any], checkpoint: Path
             ) -> dict[str, Any]:
    """What the graph takes and gives, as the model card and the engine read it."""
    classes = info.get("classes", {})
    sizes = {"probs": ["batch", len(classes.get("letters", []))], "avd": ["batch", 3], "gender": ["batch", 2]}
    return {"format": "sercache-onnx/1", "opset": OPSET, "checkpoint_sha256": file_sha256(checkpoint),
            "classes": classes, "loss": info.get("config", {}).get("loss", "ce"),
            "head": "probe" if info.get("probe") else "fusion",
            "inputs": [{"name": n, "dtype": "float32" if n.endswith("_frames") else "bool",
                        "shape": ["batch", f"{m}_frames", *(shape if n.endswith("_frames") else [])]}
                       for m, shape in shapes.items() for n in input_names([m])],
            "outputs": [{"name": o, "dtype": "float32", "shape": sizes[o]} for o in outputs]}


def _write_metadata(path: Path, described: dict[str, Any]) -> None:
    """The description as ONNX metadata (key `sercache`): plain onnxruntime users can read the class order."""
    import onnx

    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "sercache", json.dumps(described, sort_keys=True)
    proto.producer_name = "sercache"
    onnx.save(proto, str(path))


def check_parity(path: Path, reference: nn.Module, shapes: dict[str, list[int]]) -> float:
    """Largest output difference between graph and torch head on inputs of other sizes than the traced ones
    (more rows, longer and ragged frames, lengths not a multiple of a frame stride); above PARITY: refused."""
    session = open_session(path)
    worst = 0.0
    for batch, frames, seed in ((3, 13, 1), (1, 5, 2)):
        inputs = example_inputs(shapes, batch, frames, seed)
        with torch.no_grad():
            want = [t.float().numpy() for t in reference(*inputs)]
        got = session.run(None, {n: t.numpy() for n, t in zip(input_names(list(shapes)), inputs)})
        worst = max([worst, *(float(np.abs(w - g).max()) for w, g in zip(want, got))])
    if not worst <= PARITY:
        raise HeadError(f"{path}: the ONNX graph differs from the torch head by {worst:.2e} (> {PARITY:g}); "
                        "not exported")
    return worst


# ----------------------------------------------------------------------------------- engine
def open_session(path: Path):
    """An onnxruntime session on the CPU with torch's thread count (what --threads set)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise HeadError("--engine onnx needs onnxruntime (pip install 'sercache[onnx]')") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_path(head_dir: str | Path) -> Path:
    """head.onnx of a head directory, or an error saying how to make one (checked before any encoder runs)."""
    path = Path(head_dir) / ONNX_FILE
    if not path.is_file():
        raise HeadError(f"{head_dir}: no {ONNX_FILE} (--engine onnx runs an export made with `sercache export-head "
                        "RUN --to DIR --onnx`; predict with that directory)")
    return path


class OnnxHead:
    """head.onnx beside a checkpoint, run by onnxruntime in place of the torch head (`predict --engine onnx`)."""

    def __init__(self, head_dir: str | Path):
        path, checkpoint = onnx_path(head_dir), Path(head_dir) / "best.safetensors"
        self.session = open_session(path)
        meta = self.session.get_modelmeta().custom_metadata_map.get("sercache")
        self.meta = json.loads(meta) if meta else {}
        if self.meta.get("checkpoint_sha256") != file_sha256(checkpoint):
            raise HeadError(f"{path}: made from another checkpoint than {checkpoint}; export the head again")
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.modalities = [n[:-len("_frames")] for n in self.inputs if n.endswith("_frames")]

    def predict_table(self, modalities: dict, rows: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        """What `infer` returns for the torch head, for table rows in that order (batched longest-first)."""
        missing = [m for m in self.modalities if m not in modalities]
        if missing:
            raise HeadError(f"the ONNX head needs {', '.join(missing)} features")
        if not len(rows):
            return {}
        order = np.argsort(-modalities[self.modalities[0]].lengths[rows], kind="stable")
        collected: dict[str, list[np.ndarray]] = {o: [] for o in self.outputs}
        for start in range(0, len(rows), batch_size):
            batch = rows[order[start:start + batch_size]]
            for name, value in zip(self.outputs, self.session.run(None, self._feed(modalities, batch))):
                collected[name].append(value)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return {k: np.concatenate(v)[inverse] for k, v in collected.items()}

    def _feed(self, modalities: dict, batch: np.ndarray) -> dict[str, np.ndarray]:
        feed = {}
        for m in self.modalities:
            mod = modalities[m]
            if mod.streamed:
                mod.stage(batch)
            x, mask = mod.gather(batch, None, max(int(mod.lengths[batch].max()), 1), torch.float32)
            feed[f"{m}_frames"], feed[f"{m}_mask"] = x.cpu().numpy(), mask.cpu().numpy()
        return feed
