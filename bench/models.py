"""The reference models of ../shared/BENCHMARKS.md, built from code or configs with random
weights (never downloaded): shared by bench/run.py and the GPU model tests."""

from __future__ import annotations

import torch

MODELS = ("resnet50", "vit_b_16", "bert", "gpt2")
# Forward FLOPs per sample (BENCHMARKS.md).
MODEL_FLOPS = {"resnet50": 8.2e9, "vit_b_16": 35e9, "bert": 22e9, "gpt2": 22e9}


class LastHidden(torch.nn.Module):
    """HF models return ModelOutput; take the last hidden state."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids).last_hidden_state


def randomize(model: torch.nn.Module) -> torch.nn.Module:
    """torchvision zero-initializes some heads (ViT's classifier: an all-zero output) and leaves
    BN statistics at (0, 1); random weights and statistics make outputs, and their comparison,
    meaningful."""
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            m.reset_parameters()
        elif isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.8, 1.2)
            m.bias.data.uniform_(-0.1, 0.1)
    return model


def build_model(name: str, device: str, dtype: torch.dtype = torch.float16) -> torch.nn.Module:
    torch.manual_seed(0)
    if name in ("resnet50", "vit_b_16"):
        import torchvision

        model = randomize(getattr(torchvision.models, name)(weights=None))
    elif name == "bert":
        from transformers import BertConfig, BertModel

        model = LastHidden(BertModel(BertConfig(), add_pooling_layer=False))
    elif name == "gpt2":
        from transformers import GPT2Config, GPT2Model

        model = LastHidden(GPT2Model(GPT2Config(use_cache=False)))
    else:
        raise ValueError(f"unknown model {name!r} (expected one of {', '.join(MODELS)})")
    return model.eval().to(device, dtype)


def make_inputs(name: str, batch: int, device: str, dtype: torch.dtype = torch.float16) -> list[torch.Tensor]:
    if name in ("resnet50", "vit_b_16"):
        return [torch.randn(batch, 3, 224, 224, device=device, dtype=dtype)]
    vocab = 30522 if name == "bert" else 50257
    return [torch.randint(0, vocab, (batch, 128), device=device)]


def kiln_inputs(name: str, batches: tuple[int, int, int], dtype: torch.dtype = torch.float16) -> list:
    """kiln.Input with the batch dynamic over (min, opt, max)."""
    import kiln

    lo, opt, hi = batches
    if name in ("resnet50", "vit_b_16"):
        return [kiln.Input((lo, 3, 224, 224), (opt, 3, 224, 224), (hi, 3, 224, 224), dtype=dtype)]
    return [kiln.Input((lo, 128), (opt, 128), (hi, 128), dtype=torch.int64)]
