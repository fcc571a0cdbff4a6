"""Device choice, in one place: what `device: auto` means and the type autocast wants."""

from __future__ import annotations

import torch


def pick_device(name: str) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; any other name as given."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def device_type(device: str) -> str:
    """`cuda:1` -> `cuda`: the device type autocast and the gradient scaler want."""
    return "cuda" if device.startswith("cuda") else "cpu"
