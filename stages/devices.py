"""Device choice, in one place: what `device: auto` means and the type autocast wants."""

from __future__ import annotations

import torch


def pick_device(name: str) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; any other name as given."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def device_problem(key: str, name: str) -> str | None:
    """Why the device `name` (config key `key`) cannot be used here, or None."""
    if name in ("auto", "cpu"):
        return None
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        return f"{key}={name}: not a device s2s runs on; use auto, cpu, cuda or cuda:N"
    if not torch.cuda.is_available():
        return f"{key}={name}: no CUDA GPU is visible to PyTorch here; use auto or cpu"
    if index and int(index) >= torch.cuda.device_count():
        return f"{key}={name}: there are {torch.cuda.device_count()} GPUs here (cuda:0 to cuda:{torch.cuda.device_count() - 1})"
    return None


def device_type(device: str) -> str:
    """`cuda:1` -> `cuda`: the device type autocast and the gradient scaler want."""
    return "cuda" if device.startswith("cuda") else "cpu"
