"""Devices and token-sized batches: ``device=`` / ``--device``, GPU autocast against float32 (skipped without a
GPU), ``max_batch_tokens`` giving the same vectors with bounded batches."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lsr  # noqa: E402
from lsr.cli.main import main  # noqa: E402
from lsr.encoders.base import resolve_device  # noqa: E402
from lsr.encoders.splade import _batches  # noqa: E402
from lsr.errors import LsrError  # noqa: E402

TEXTS = [
    "Vitamin D deficiency raises fracture risk in elderly women " * (i % 7 + 1) + f"case {i}"
    for i in range(40)
]
GPU = torch.cuda.is_available()


def _dense(batch) -> np.ndarray:
    out = np.zeros((len(batch), len(batch.vocab)), np.float32)
    for r in range(len(batch)):
        i, w = batch.row(r)
        out[r, i] = w
    return out


def test_batches_respect_texts_and_tokens() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, 500)
    order = np.argsort(-lengths, kind="stable")
    for batch_size, max_tokens in [(32, None), (32, 1000), (8, 256), (64, 100)]:
        batches = _batches(order, lengths, batch_size, max_tokens)
        np.testing.assert_array_equal(np.concatenate(batches), order)  # every text once, in order
        for b in batches:
            assert len(b) <= batch_size
            if max_tokens is not None:
                assert len(b) == 1 or len(b) * lengths[b].max() <= max_tokens


def test_max_batch_tokens_same_vectors() -> None:
    base = lsr.load_encoder("splade-tiny", batch_size=16)
    capped = lsr.load_encoder("splade-tiny", batch_size=16, max_batch_tokens=120)
    np.testing.assert_allclose(
        _dense(capped.encode_documents(TEXTS)), _dense(base.encode_documents(TEXTS)), atol=1e-5
    )
    assert "max_batch_tokens" not in capped.config()  # speed only: not a setting of the vectors


def test_device_choices_and_errors(monkeypatch) -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if GPU else resolve_device("auto"))
    monkeypatch.setenv("LSR_DEVICE", "cpu")
    assert resolve_device(None) == "cpu"
    with pytest.raises(LsrError, match="device must be one of"):
        resolve_device("tpu")
    if not GPU:
        with pytest.raises(LsrError, match="no CUDA GPU"):
            lsr.load_encoder("splade-tiny", device="cuda")
    enc = lsr.load_encoder("splade-tiny", device="cpu")
    assert "device" not in enc.config()


def test_cli_device(tmp_path, capsys) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": str(i), "text": t}) + "\n" for i, t in enumerate(TEXTS[:5])))
    out = tmp_path / "v.jsonl"
    args = [
        "encode",
        "--input",
        str(corpus),
        "--output",
        str(out),
        "--device",
        "cpu",
        "--max-batch-tokens",
        "64",
    ]
    assert main(args) == 0
    assert len(out.read_text().splitlines()) == 5
    capsys.readouterr()
    assert main(["encode", "--input", str(corpus), "--output", str(out), "--device", "tpu"]) == 2
    assert capsys.readouterr().err.strip().startswith("lsr: error: device must be one of")


@pytest.mark.skipif(not GPU, reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16"])
def test_gpu_matches_cpu_float32(precision) -> None:
    """On a GPU: float32 equals the CPU's to rounding; bf16/fp16 autocast keeps the top-64 terms of each
    vector (at least 90% of them, the rest near-ties) and their weights within a few percent."""
    cpu = lsr.load_encoder("splade-tiny", device="cpu")
    gpu = lsr.load_encoder("splade-tiny", device="cuda", precision=precision)
    want = _dense(cpu.encode_documents(TEXTS))
    got = _dense(gpu.encode_documents(TEXTS))
    if precision == "float32":
        np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-3)
        return
    for r in range(len(TEXTS)):
        top_w = set(np.argsort(-want[r])[:64])
        top_g = set(np.argsort(-got[r])[:64])
        assert len(top_w & top_g) >= 58, (r, len(top_w & top_g))
        common = sorted(top_w & top_g)
        np.testing.assert_allclose(got[r, common], want[r, common], rtol=0.05, atol=0.02)


def test_device_flag_on_every_model_command() -> None:
    from lsr.cli.main import build_parser

    p = build_parser()
    base = {
        "encode": ["--input", "x", "--output", "y"],
        "index": ["--input", "x", "--output", "y"],
        "eval": ["--dataset", "scifact"],
        "serve": ["--index", "x"],
        "train": ["--data", "scifact", "--output", "y"],
    }
    for cmd, rest in base.items():
        assert p.parse_args([cmd, *rest, "--device", "cpu"]).device == "cpu"
    assert p.parse_args(["encode", *base["encode"]]).device is None  # None: auto ($LSR_DEVICE, GPU, CPU)
