"""Host-to-device prefetch for a stream of batches: the copies of the next batches overlap the step.

Used by ``vidshard bench-train`` (:mod:`vidshard.bench.train_step`) to feed the step it times;
the readers stay device-agnostic and hand out host (NumPy) batches.  Imports nothing of vidshard.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
U = TypeVar("U")


def prefetch_to_device(batches: Iterable[T], put: Callable[[T], U], size: int = 2) -> Iterator[U]:
    """Yield ``put(batch)`` for each batch, keeping ``size`` of them in flight ahead of the consumer.

    ``put`` starts a host-to-device copy and returns at once (``jax.device_put``, or
    ``torch.Tensor.to(device, non_blocking=True)`` from pinned memory), so the copy of the next
    batches overlaps the step that uses the current one.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    ahead: deque[U] = deque()
    for batch in batches:
        ahead.append(put(batch))
        if len(ahead) > size:
            yield ahead.popleft()
    while ahead:
        yield ahead.popleft()
