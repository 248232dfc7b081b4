"""Whole models, fully converted (require_full_compilation=True), float32, random weights,
dynamic batch over a range run at three sizes, against eager."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from kiln_testing import cosine, engines_of, torch_ops_of
from models import randomize

import kiln

pytestmark = pytest.mark.slow

BATCHES = (1, 3, 4)


def _outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    return [t for t in out if isinstance(t, torch.Tensor)]


def check_model(
    model: torch.nn.Module,
    make: Callable[[int], tuple[torch.Tensor, ...]],
    dynamic: list[int],
    max_error: float = 1e-3,
) -> None:
    """Compiles with the batch (dim 0 of inputs in `dynamic`) in [1, 4], runs 1, 3, 4."""
    model = model.eval()
    examples = make(2)
    inputs = []
    for i, t in enumerate(examples):
        if i in dynamic:
            rest = list(t.shape[1:])
            inputs.append(kiln.Input([1, *rest], [2, *rest], [4, *rest], dtype=t.dtype))
        else:
            inputs.append(kiln.Input.from_tensor(t))
    compiled = kiln.compile(model, inputs=inputs, require_full_compilation=True)
    assert len(engines_of(compiled)) == 1
    assert not torch_ops_of(compiled), torch_ops_of(compiled)
    for b in BATCHES:
        args = make(b)
        with torch.no_grad():
            refs = _outputs(model(*args))
            outs = _outputs(compiled(*args))
        assert len(outs) == len(refs)
        for out, ref in zip(outs, refs):
            assert out.shape == ref.shape
            err = (out - ref).abs().max().item()
            scale = max(1.0, ref.abs().max().item())
            assert cosine(out, ref) > 0.9999, f"batch {b}: cosine {cosine(out, ref)}"
            assert err < max_error * scale, f"batch {b}: max abs error {err} (scale {scale})"


def images(size: int) -> Callable[[int], tuple[torch.Tensor, ...]]:
    return lambda b: (torch.randn(b, 3, size, size),)


def test_resnet18() -> None:
    torchvision = pytest.importorskip("torchvision")
    check_model(randomize(torchvision.models.resnet18(num_classes=10)), images(64), [0])


def test_mobilenet_v2() -> None:
    torchvision = pytest.importorskip("torchvision")
    check_model(randomize(torchvision.models.mobilenet_v2(num_classes=10)), images(64), [0])


def test_vision_transformer() -> None:
    torchvision = pytest.importorskip("torchvision")
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
        num_classes=10,
    )  # fmt: skip
    check_model(randomize(vit), images(32), [0])


def _ids(b: int, vocab: int = 100, seq: int = 16) -> torch.Tensor:
    return torch.randint(0, vocab, (b, seq))


def test_bert() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    check_model(transformers.BertModel(config), lambda b: (_ids(b),), [0])


class GPT2WithMask(torch.nn.Module):
    """GPT2Model taking (input_ids, attention_mask) positionally."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=mask).last_hidden_state


def test_gpt2() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64, use_cache=False,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = GPT2WithMask(transformers.GPT2Model(config))
    check_model(model, lambda b: (_ids(b), torch.ones(b, 16, dtype=torch.int64)), [0, 1])


class Logits(torch.nn.Module):
    """A causal LM taking input_ids only, returning its logits."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids).logits


def test_gpt2_lm_head_without_attention_mask() -> None:
    """Without a mask, transformers' masking_utils builds the causal mask in the graph (with
    find_packed_sequence_indices: a cumsum over the diffed position ids). Kiln proves it causal
    and drops it (kiln/_causal.py); where the batch range is too wide to prove that, the mask's
    ops, cumsum included, run in the engine. Either way the whole model is one engine."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        n_layer=2, n_embd=64, n_head=2, vocab_size=100, n_positions=64, use_cache=False,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = Logits(transformers.GPT2LMHeadModel(config)).eval()
    ids = _ids(2)
    compiled = kiln.compile(model, inputs=[ids], require_full_compilation=True)
    assert len(engines_of(compiled)) == 1, compiled.graph
    assert not torch_ops_of(compiled), torch_ops_of(compiled)
    assert "aten.cumsum.default" not in compiled.kiln_report.blocks[0].ops  # the mask is gone
    with torch.no_grad():
        ref, out = model(ids), compiled(ids)
    assert cosine(out, ref) > 0.9999
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    wide = kiln.Input(min_shape=(1, 16), opt_shape=(2, 16), max_shape=(100, 16), dtype=torch.long)
    kept = kiln.compile(model, inputs=[wide], require_full_compilation=True)
    assert len(engines_of(kept)) == 1, kept.graph
    assert "aten.cumsum.default" in kept.kiln_report.blocks[0].ops  # the mask's ops, kept
    for b in (1, 3):
        batch = _ids(b)
        with torch.no_grad():
            torch.testing.assert_close(kept(batch), model(batch), atol=1e-4, rtol=1e-4)
    check_model(model, lambda b: (_ids(b),), [0])  # and with the batch dynamic
