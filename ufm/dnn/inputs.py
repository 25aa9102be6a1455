"""What goes into a network: a split's inputs on the device, and the precision of the forward pass.

:class:`PixelInputs` keeps a split of 8-bit images on the device as uint8 (a quarter of float32's
memory: CIFAR-10's training split is 150 MB instead of 600 MB) and normalizes each batch when it is
taken, with the operations of :func:`ufm.dnn.data.load_dataset`, so a batch equals the
corresponding rows of the float inputs bit for bit and training gives the same records either way.
:func:`device_inputs` chooses: pixels on the device when they fit in half its free memory, else
pixels in (pinned) host memory moved batch by batch, and the float inputs for data that are not
8-bit. ``memory_format="channels_last"`` gives every image batch in that layout.

:func:`forward_precision` is the context of the forward passes: ``autocast="bfloat16"`` runs them
under ``torch.autocast`` (matrix products and convolutions in bfloat16; the loss and the recorded
metrics are computed from features and logits cast back to float32 / float64).
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch

__all__ = ["PixelInputs", "device_inputs", "forward_precision", "to_memory_format"]


def to_memory_format(x: torch.Tensor, memory_format: str) -> torch.Tensor:
    """An image batch ``(B, C, H, W)`` in ``memory_format`` (``contiguous`` leaves it as it is)."""
    if memory_format == "channels_last" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


class PixelInputs:
    """A split's 8-bit pixels ``(N, *input_shape)`` normalized batch by batch.

    Indexing (a slice, or a tensor of sample indices on any device) returns the float inputs of
    those samples on ``device`` in ``dtype``, through ``ds.normalize`` (the one definition of the
    normalization); ``shape``, ``device``, ``dtype`` and ``new_zeros`` behave as those of the
    float tensor it stands for.
    """

    def __init__(self, pixels: torch.Tensor, ds, device: torch.device, dtype: torch.dtype,
                 memory_format: str = "contiguous"):
        self.pixels = pixels  # uint8 (N, *input_shape), on the device or in host memory
        self.normalize = ds.normalize
        self.device, self.dtype, self.memory_format = torch.device(device), dtype, memory_format

    @property
    def shape(self) -> torch.Size:
        return self.pixels.shape

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.to(self.pixels.device)
        rows = self.pixels[index].to(self.device, non_blocking=True)
        return to_memory_format(self.normalize(rows, self.dtype), self.memory_format)

    def new_zeros(self, shape) -> torch.Tensor:
        return torch.zeros(shape, device=self.device, dtype=self.dtype)


def device_inputs(x: torch.Tensor, pixels: Optional[torch.Tensor], ds, device: torch.device, dtype: torch.dtype,
                  memory_format: str = "contiguous"):
    """A split's inputs for a run on ``device``: :class:`PixelInputs` when the split has 8-bit
    ``pixels`` that are those of ``x`` (on the device if they fit in half its free memory, else
    pinned in host memory), else the float inputs ``x`` moved there in ``dtype`` (and
    ``memory_format``)."""
    if pixels is None or not _same_inputs(x, pixels, ds):
        return to_memory_format(x.to(device=device, dtype=dtype), memory_format)
    where = device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if pixels.numel() > free // 2:
            where, pixels = torch.device("cpu"), pixels.pin_memory()
    return PixelInputs(pixels.to(where), ds, device, dtype, memory_format)


def _same_inputs(x: torch.Tensor, pixels: torch.Tensor, ds) -> bool:
    """Whether ``pixels`` are the pixels of the float inputs ``x`` (same shape; the first and last
    rows normalize to x's exactly): a dataset whose ``x_*`` were changed after loading, without its
    ``uint8``, keeps its float inputs."""
    if pixels.shape != x.shape:
        return False
    ends = [slice(0, min(4, len(x))), slice(max(0, len(x) - 4), len(x))]
    return all(torch.equal(ds.normalize(pixels[s]), x[s].to(torch.float32)) for s in ends)


def forward_precision(device: torch.device, autocast: str):
    """The context of a forward pass: ``torch.autocast`` in bfloat16 for ``autocast="bfloat16"``,
    else nothing."""
    if autocast == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
