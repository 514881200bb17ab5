"""A seq2seq checkpoint built from a config, for tests and benchmarks of the AEC stage (no hub offline)."""

from __future__ import annotations

from pathlib import Path


def build_small_seq2seq(path: Path, texts: list[str], seed: int) -> Path:
    """A small BART (2+2 layers, d 128) with a byte-level BPE tokenizer trained on the given texts: the
    from-scratch AEC model, a seq2seq checkpoint that tests can build offline and a baseline for bin/bench-aec
    (the demo used it before the warm start: it must learn the language from the train pairs alone)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=1000, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(path))
    tokenizer = BartTokenizerFast(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"))
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    config = BartConfig(vocab_size=len(tokenizer), d_model=128, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=256,
                        decoder_ffn_dim=256, max_position_embeddings=128, pad_token_id=1, bos_token_id=0,
                        eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=0, dropout=0.1)
    BartForConditionalGeneration(config).save_pretrained(path)
    return path
