"""The one device policy: CUDA when available, else the CPU; always overridable.

Every part of ufm that places tensors (the solver, Hessians, training) resolves its ``device``
argument here, so the rule and its error messages are the same everywhere.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

from ufm._core.validation import InvalidParameterError

__all__ = ["default_device", "resolve_device", "DEVICE_NAMES"]

#: what a ``device`` argument may be, as messages state it
DEVICE_NAMES = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: Union[None, str, torch.device] = None, caller: str = "ufm") -> torch.device:
    """The torch device for ``device``: None or ``"auto"`` gives :func:`default_device`;
    ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device`` give that device.

    Raises:
        InvalidParameterError: (``param="device"``) an unknown name, a device type other than
            cpu and cuda, or CUDA asked for where torch sees none.
    """
    if device is None or device == "auto":
        return default_device()
    try:
        dev = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise InvalidParameterError(f"The 'device' parameter of {caller} must be {DEVICE_NAMES}. Got {device!r} instead.",
                                    param="device", value=device, expected=DEVICE_NAMES)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"The 'device' parameter of {caller} is {str(device)!r}, but torch sees no CUDA "
                                    "device here; use 'cpu' or 'auto'.", param="device", value=device,
                                    expected="'cpu' or 'auto' (no CUDA device here)")
    return dev


def device_kind(device: Optional[str]) -> str:
    """``"cuda"`` or ``"cpu"``: the kind of device ``device`` asks for, without placing anything."""
    if device is None or device == "auto":
        return default_device().type
    return "cuda" if str(device).startswith("cuda") else "cpu"
