"""The two orders the kernel tests meet: the kernels' boundary (the layer's own layout,
(T, B, D, F), each row in its own time order) and processing order ((T, D, B, F), the backward
direction reversed within each row's real steps), in which the reference step loop
(:func:`birnn.backends.reference.scan`) and the kernels' saved tensors run. Padded steps stay in place."""

import torch
from birnn.batch import reverse_valid


def processing(x, lengths):
    """(T, B, D, F) or (T, B, D*F) with D=2 -> (T, D, B, F) in processing order."""
    T, B = x.shape[:2]
    x = x.view(T, B, 2, -1)
    return torch.stack([x[:, :, 0], reverse_valid(x[:, :, 1], lengths)], 1)


def natural(x, lengths):
    """(T, D, B, F) in processing order -> (T, B, D, F), contiguous (the kernels' input layout)."""
    return torch.stack([x[:, 0], reverse_valid(x[:, 1], lengths)], 2).contiguous()
