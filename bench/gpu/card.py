"""The card a GPU benchmark ran on, for the tables' headers."""

import subprocess

import torch


def card() -> tuple[str, str]:
    """(device name, driver version) of the current CUDA device."""
    name = torch.cuda.get_device_name()
    try:
        drv = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        drv = f"unknown ({e})"
    return name, drv
