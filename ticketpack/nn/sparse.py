"""2:4 layers on CUDA through torch's semi-structured sparse kernels.

A ticket whose masks are ``nm:2:4`` has exactly two kept weights in every four consecutive
inputs, the pattern NVIDIA's sparse tensor cores run at up to twice the dense rate. This
module swaps those layers' dense weights for ``torch.sparse.to_sparse_semi_structured``
tensors (fp16/bf16, CUDA only); every other layer stays dense.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError
from ..format.tensors import MaskedTensor, Ticket


def two_four_names(ticket: Ticket) -> list[str]:
    """Weights whose mask is 2:4 along the input dimension (2-D only)."""
    return [t.name for t in ticket.tensors
            if isinstance(t, MaskedTensor) and t.mask.kind == "nm" and (t.mask.n, t.mask.m) == (2, 4)
            and len(t.shape) == 2]


def sparsify_two_four(model: nn.Module, names: list[str], dtype: torch.dtype = torch.bfloat16) -> list[str]:
    """Cast ``model`` to ``dtype`` and give each named ``nn.Linear`` weight a 2:4 sparse form.

    Returns the weights converted. Layers the kernels cannot take (shape constraints,
    embeddings, tied weights) stay dense and are left out of the list.
    """
    if not torch.cuda.is_available() or next(model.parameters()).device.type != "cuda":
        raise UsageError("sparse kernels: 2:4 semi-structured kernels need the model on CUDA")
    from torch.sparse import to_sparse_semi_structured

    model.to(dtype)
    modules = dict(model.named_modules())
    done = []
    for name in names:
        module = modules.get(name.rsplit(".", 1)[0])
        if not isinstance(module, nn.Linear) or _is_tied(model, module.weight):
            continue
        try:
            sparse = to_sparse_semi_structured(module.weight.detach())
        except (RuntimeError, ValueError):  # shapes the kernels do not support stay dense
            continue
        module.weight = nn.Parameter(sparse, requires_grad=False)
        done.append(name)
    return done


def _is_tied(model: nn.Module, weight: torch.Tensor) -> bool:
    return sum(p is weight for p in model.parameters()) > 1 or any(
        isinstance(m, nn.Embedding) and m.weight is weight for m in model.modules())
