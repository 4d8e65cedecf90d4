"""Choosing the torch device: auto, cpu or cuda, with a clear error where CUDA is missing."""

from __future__ import annotations

import torch

from .errors import DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) was built without CUDA"
    return "torch sees no CUDA GPU on this machine"


def resolve_device(choice: str) -> torch.device:
    """Turn 'auto', 'cpu', 'cuda' or 'cuda:N' into a device, refusing what is not there."""
    choice = (choice or "auto").strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or choice.startswith("cuda:"):
        reason = cuda_unavailable_reason()
        if reason:
            raise DeviceError(f"CUDA was asked for, but {reason}; use --device cpu or auto")
        try:
            device = torch.device(choice)
        except RuntimeError as exc:
            raise DeviceError(f"bad device '{choice}': {exc}") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"there is no {choice}; this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
        return device
    raise DeviceError(f"unknown device '{choice}'; choose auto, cpu or cuda")
