"""Shared-memory arrays between the host and the fused Lava process.

Lava moves a Var between its processes one element at a time (measured
here: about 20 microseconds per element; reading the outputs of 360 digits
samples took 0.9 s, writing their input frames several seconds). The fused
model therefore reads its input frames from, and writes its outputs and
counters to, named shared-memory blocks that the host creates before the
run; the host reads and writes them as NumPy arrays directly.

The host owns the blocks: :meth:`SharedArrays.release` closes and unlinks
them (the Lava network calls it in ``close()``, also after a failure), so no
segment is left in ``/dev/shm``. The Lava process only attaches.
"""

from __future__ import annotations

from multiprocessing import resource_tracker, shared_memory

import numpy as np


class SharedArrays:
    """Named float64 arrays in shared memory: ``arrays[name]`` on the host;
    ``spec`` (names, block names and shapes) lets another process attach."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.blocks: dict[str, shared_memory.SharedMemory] = {}
        self.arrays: dict[str, np.ndarray] = {}
        try:
            for name, shape in shapes.items():
                size = max(8, int(np.prod(shape)) * 8)
                block = shared_memory.SharedMemory(create=True, size=size)
                self.blocks[name] = block
                self.arrays[name] = np.ndarray(shape, dtype=np.float64, buffer=block.buf)
                self.arrays[name][...] = 0.0
        except BaseException:
            self.release()
            raise

    @property
    def spec(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        return {name: (self.blocks[name].name, array.shape) for name, array in self.arrays.items()}

    def release(self) -> None:
        """Close and unlink every block (idempotent)."""
        self.arrays.clear()
        for block in self.blocks.values():
            try:
                block.close()
                block.unlink()
            except FileNotFoundError:
                pass
        self.blocks.clear()


def attach(spec: dict[str, tuple[str, tuple[int, ...]]]) -> tuple[dict, dict]:
    """In another process: NumPy views of the host's blocks (and the blocks,
    to keep them open). The blocks are not registered with this process's
    resource tracker: the host unlinks them."""
    blocks, arrays = {}, {}
    register = resource_tracker.register
    resource_tracker.register = lambda *args, **kwargs: None  # Python 3.11 has no track=False
    try:
        for name, (block_name, shape) in spec.items():
            block = shared_memory.SharedMemory(name=block_name)
            blocks[name] = block
            arrays[name] = np.ndarray(shape, dtype=np.float64, buffer=block.buf)
    finally:
        resource_tracker.register = register
    return blocks, arrays
