"""The reference models on the GPU in float16 against eager: resnet50, vit_b_16, HF bert-base
(seq 128) and gpt2 (seq 128). One compile per model with the batch dynamic in [1, 32], run at
batch 1 and 32: cosine similarity > 0.999 and no NaN."""

from __future__ import annotations

import pytest
import torch
from kiln_testing import cosine, engines_of, torch_ops_of
from models import MODELS, build_model, kiln_inputs, make_inputs

import kiln

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.mark.parametrize("name", MODELS)
def test_model_fp16_dynamic_batch(name: str) -> None:
    if name in ("resnet50", "vit_b_16"):
        pytest.importorskip("torchvision")
    else:
        pytest.importorskip("transformers")
    model = build_model(name, "cuda")
    compiled = kiln.compile(model, inputs=kiln_inputs(name, (1, 16, 32)), device="cuda:0",
                            require_full_compilation=True)
    assert len(engines_of(compiled)) == 1
    assert not torch_ops_of(compiled), torch_ops_of(compiled)
    for batch in (1, 32):
        args = make_inputs(name, batch, "cuda")
        with torch.no_grad():
            ref = model(*args)
            out = compiled(*args)
        assert out.shape == ref.shape and out.dtype == torch.float16
        assert not torch.isnan(out).any(), f"{name} batch {batch}: NaN in Kiln's output"
        c = cosine(out, ref)
        print(f"{name} batch {batch}: cosine {c:.6f}")
        assert c > 0.999, f"{name} batch {batch}: cosine {c}"
