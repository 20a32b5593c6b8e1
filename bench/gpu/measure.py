"""What every GPU benchmark measures the same way: the card it ran on, and a call's GPU time."""

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


SPIN_CYCLES = 2_000_000  # ~1 ms at Hopper clocks: longer than the host needs to queue any call here


def time_ms(fn, warmup=3, reps=10, before=None):
    """Median over reps of fn's GPU time between two CUDA events, after warmup untimed calls;
    before (untimed) runs ahead of each timed call. A spin kernel queued ahead of the first event
    keeps the GPU busy while the host queues fn (Python, ctypes, launches), so the interval holds
    the GPU's work and not the host's: every library and every backend is timed the same way."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if before is not None:
            before()
        torch.cuda._sleep(SPIN_CYCLES)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]
