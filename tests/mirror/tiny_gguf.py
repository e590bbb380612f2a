"""TEST MODEL: write a tiny "scripted" llama-architecture GGUF that llama.cpp really loads and runs.

Stand-in for a real model in container tests (no GPU, no model download here). Real BPE vocabulary
and chat template come from the llama.cpp tree (models/ggml-vocab-qwen2.gguf and
models/templates/Qwen-Qwen2.5-7B-Instruct.jinja, with tool calling), so prompt sizes and
templating are what a real Qwen model sees. The weights are chosen so that whatever the prompt,
the model answers REPLY and then end-of-text: attention and FFN projections are random but
their output projections are zero, so the residual stream at the last position is the last
token's embedding; embedding and output matrices encode "any token -> Hello", "Hello -> from",
..., "ig -> EOS". A test can then assert the exact reply, and agents that ask for long answers
still get a short one (llama-server's -n does not cap a request's own max_tokens).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFWriter

REPLY_TOKENS = ("Hello", "Ġfrom", "Ġair", "ig")
REPLY = "Hello from airig"
HIDDEN, LAYERS, HEADS, FF = 64, 2, 4, 128
SCALE = 10.0


def write(vocab_gguf: Path, template: Path, out: Path) -> Path:
    vocab = GGUFReader(vocab_gguf)
    f = vocab.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    eos = int(f["tokenizer.ggml.eos_token_id"].contents())
    chain = [tokens.index(t) for t in REPLY_TOKENS]
    n_vocab = len(tokens)

    embd = np.zeros((n_vocab, HIDDEN), dtype=np.float32)
    embd[:, 0] = 1.0  # every token points at the first reply token ...
    output = np.zeros((n_vocab, HIDDEN), dtype=np.float32)
    output[chain[0], 0] = SCALE
    for i, tok in enumerate(chain):  # ... except the reply's own tokens, which point onwards
        embd[tok] = 0.0
        embd[tok, i + 1] = 1.0
        nxt = chain[i + 1] if i + 1 < len(chain) else eos
        output[nxt, i + 1] = SCALE

    rng = np.random.default_rng(7)
    w = GGUFWriter(str(out), "llama")
    w.add_name("airig tiny scripted test model")
    w.add_context_length(131072)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(str(f["tokenizer.ggml.pre"].contents()))
    w.add_token_list(tokens)
    w.add_token_types(f["tokenizer.ggml.token_type"].contents())
    w.add_token_merges(f["tokenizer.ggml.merges"].contents())
    w.add_eos_token_id(eos)
    w.add_bos_token_id(int(f["tokenizer.ggml.bos_token_id"].contents()))
    w.add_pad_token_id(eos)
    w.add_add_bos_token(False)
    w.add_chat_template(template.read_text(encoding="utf-8"))

    # Every matrix F16 (the catalog's airig-tiny at FP16), norms F32 as llama.cpp keeps them.
    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float16)

    def zeros(*shape: int) -> np.ndarray:
        return np.zeros(shape, dtype=np.float16)

    w.add_tensor("token_embd.weight", embd.astype(np.float16))
    w.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    w.add_tensor("output.weight", output.astype(np.float16))
    for b in range(LAYERS):
        p = f"blk.{b}."
        w.add_tensor(p + "attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", rand(HIDDEN, HIDDEN))
        w.add_tensor(p + "attn_k.weight", rand(HIDDEN, HIDDEN))
        w.add_tensor(p + "attn_v.weight", rand(HIDDEN, HIDDEN))
        w.add_tensor(p + "attn_output.weight", zeros(HIDDEN, HIDDEN))
        w.add_tensor(p + "ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", rand(FF, HIDDEN))
        w.add_tensor(p + "ffn_up.weight", rand(FF, HIDDEN))
        w.add_tensor(p + "ffn_down.weight", zeros(HIDDEN, FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-tree", type=Path, required=True, help="llama.cpp source tree")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    models = args.llama_tree / "models"
    write(
        models / "ggml-vocab-qwen2.gguf",
        models / "templates" / "Qwen-Qwen2.5-7B-Instruct.jinja",
        args.out,
    )


if __name__ == "__main__":
    main()
