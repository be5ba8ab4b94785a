"""SPLADE over decoder-only LLMs (Mistral, Llama, Qwen2 via AutoModelForCausalLM), with and without echo.

Tiny random decoders are built here from configs with a small BPE tokenizer trained on a few sentences (no
hub). The oracle is the plain computation: the full causal LM's logits, log1p(relu), max over the pooled
positions (all tokens; with echo the second copy of the text only).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

import lsr  # noqa: E402

DOCS = [
    "Vitamin D deficiency raises fracture risk in elderly women.",
    "Cells divide by mitosis; DNA repair enzymes fix breaks.",
    "The cat sat on the mat.",
    "",
]
QUERIES = ["vitamin d fractures", "cat"]


def _tokenizer(folder):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False
    )
    tok.train_from_iterator(DOCS * 20 + QUERIES * 20, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(folder)
    return fast


def _decoder(arch: str, folder, vocab_size: int):
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

    cls = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config}[arch]
    cfg = cls(
        vocab_size=vocab_size + 7,  # LLM heads are often padded past the tokenizer's vocabulary
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=arch == "qwen2",
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        model.get_output_embeddings().weight.normal_(0, 2.0)  # some positive logits: non-empty vectors
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module", params=["mistral", "llama", "qwen2"])
def llm(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    tok = _tokenizer(folder)
    model = _decoder(request.param, folder, len(tok))
    return str(folder), model, tok


def _reference(model, tok, texts, echo: bool, max_length: int = 64) -> np.ndarray:
    out = np.zeros((len(texts), model.config.vocab_size), np.float32)
    for r, t in enumerate(texts):
        if echo:
            p = tok(t, add_special_tokens=False)["input_ids"][: (max_length - 1) // 2]
            ids, lo, hi = [tok.bos_token_id] + p + p, 1 + len(p), 1 + 2 * len(p)
            if not p:
                lo, hi = 0, len(ids)
        else:
            ids = tok(t, truncation=True, max_length=max_length)["input_ids"]
            lo, hi = 0, len(ids)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0]
        out[r] = torch.log1p(torch.relu(logits[lo:hi])).amax(dim=0).numpy()
    return out


def _dense(batch) -> np.ndarray:
    out = np.zeros((len(batch), len(batch.vocab)), np.float32)
    for r in range(len(batch)):
        i, w = batch.row(r)
        out[r, i] = w
    return out


@pytest.mark.parametrize("echo", [False, True])
def test_llm_splade_matches_plain_reference(llm, echo) -> None:
    folder, model, tok = llm
    enc = lsr.load_encoder(folder, echo=echo, doc_max_length=64, query_max_length=64, batch_size=3)
    cfg = enc.config()
    assert (cfg["kind"], cfg["backbone"], cfg["echo"]) == ("splade", "causal-lm", echo)
    assert len(enc.vocab) == model.config.vocab_size  # the LLM's own vocabulary, padded rows included
    assert enc.vocab.token(tok.convert_tokens_to_ids("<s>")) == "<s>"
    got = _dense(enc.encode_documents(DOCS))
    np.testing.assert_allclose(got, _reference(model, tok, DOCS, echo), atol=2e-5)
    assert got.any()


def test_llm_vocab_recorded_in_index(llm, tmp_path) -> None:
    from lsr.index import build_index, open_index

    folder, model, tok = llm
    enc = lsr.load_encoder(folder, echo=True, doc_max_length=64, query_max_length=64)
    path = build_index(enc.encode_documents(DOCS), tmp_path / "idx", encoder=enc, methods="exact")
    idx = open_index(path)
    assert idx.vocab.tokens == enc.vocab.tokens and idx.encoder_config["echo"] is True
    res = idx.search(["vitamin fracture"], k=2)[0]  # text query: reloads the encoder from the manifest
    q = enc.encode_queries(["vitamin fracture"])
    want = _dense(enc.encode_documents(DOCS)) @ _dense(q)[0]
    np.testing.assert_allclose(res.scores, np.sort(want)[::-1][:2], rtol=1e-5)


def test_llm_bf16_weights(llm) -> None:
    folder, _, _ = llm
    enc = lsr.load_encoder(folder, weights_dtype="bfloat16", doc_max_length=64, query_max_length=64)
    assert enc.config()["weights_dtype"] == "bfloat16"
    assert next(enc.model.parameters()).dtype == torch.bfloat16
    f32 = _dense(lsr.load_encoder(folder, doc_max_length=64, query_max_length=64).encode_documents(DOCS[:3]))
    got = _dense(enc.encode_documents(DOCS[:3]))
    for r in range(3):  # bf16 weights: the heaviest terms survive
        top = np.argsort(-f32[r])[:10]
        assert len(set(top) & set(np.argsort(-got[r])[:10])) >= 7


def test_llm_forward_train_sparse_backward_equals_dense(llm) -> None:
    """forward_train (tiled max-pool projection, sparse backward) == encode's vectors, and its gradients ==
    the plain dense computation's."""
    folder, _, _ = llm
    for echo in (False, True):
        enc = lsr.load_encoder(folder, echo=echo, doc_max_length=64, query_max_length=64)
        out = enc.forward_train(DOCS[:3], "document")
        np.testing.assert_allclose(out.detach().numpy(), _dense(enc.encode_documents(DOCS[:3])), atol=2e-5)
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        (out * g).sum().backward()
        fast = {n: p.grad.clone() for n, p in enc.model.named_parameters() if p.grad is not None}
        enc.model.zero_grad()
        # dense: the full logits of the padded batch, masked to the pooled positions
        ids, p0, p1 = enc._inputs(DOCS[:3], 64)
        width = max(map(len, ids))
        x = torch.zeros((3, width), dtype=torch.long)
        am = torch.zeros((3, width), dtype=torch.long)
        for r, t in enumerate(ids):
            x[r, : len(t)], am[r, : len(t)] = torch.tensor(t), 1
        pos = torch.arange(width)
        pm = (pos >= torch.tensor(p0)[:, None]) & (pos < torch.tensor(p1)[:, None])
        logits = enc.model(input_ids=x, attention_mask=am).logits
        dense = torch.log1p(torch.relu(logits.masked_fill(~pm[..., None], -1e9).amax(dim=1)))
        (dense * g).sum().backward()
        for n, p in enc.model.named_parameters():
            if p.grad is not None:
                torch.testing.assert_close(fast[n], p.grad, atol=1e-4, rtol=1e-3)
        enc.model.zero_grad()


def test_echo_changes_the_vectors(llm) -> None:
    folder, _, _ = llm
    plain = lsr.load_encoder(folder, doc_max_length=64, query_max_length=64)
    echo = lsr.load_encoder(folder, echo=True, doc_max_length=64, query_max_length=64)
    a, b = _dense(plain.encode_documents(DOCS[:2])), _dense(echo.encode_documents(DOCS[:2]))
    assert not np.allclose(a, b, atol=1e-3)
    with pytest.raises(lsr.LsrError, match="echo=True needs a causal"):
        lsr.load_encoder("splade-tiny", echo=True)
