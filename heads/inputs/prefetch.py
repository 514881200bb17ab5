"""Batches gathered ahead of the training step, in a background thread.

When the features are not resident on the compute device (host placement: pinned RAM; stream: the
store), building a batch costs a gather on the CPU and a host-to-device copy. A background thread
builds the next `depth` batches while the model computes on the current one; on CUDA it issues the
copies on a side stream, and the consumer waits on that stream's event before using a batch, so the
copy overlaps with compute. The batches are the same tensors, in the same order, as gathering in
the loop: only the time they are built at changes.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator, Sequence, TypeVar

import torch

T = TypeVar("T")
_DONE = object()


def prefetched(items: Sequence[T], build: Callable[[T], object], depth: int, device: torch.device,
               stats: dict[str, float] | None = None) -> Iterator[tuple[T, object]]:
    """(item, build(item)) for every item in order; with depth > 0 the builds run `depth` items ahead.

    `stats` (optional) accumulates 'build_s' (time spent building) and 'wait_s' (time the consumer spent
    waiting for a batch): 1 - wait_s / build_s is the share of the building hidden behind the consumer's work."""
    stats = stats if stats is not None else {}
    stats.setdefault("build_s", 0.0)
    stats.setdefault("wait_s", 0.0)

    def timed(item: T) -> object:
        started = time.perf_counter()
        built = build(item)
        stats["build_s"] += time.perf_counter() - started
        return built

    if depth <= 0:
        for item in items:
            started = time.perf_counter()
            built = timed(item)
            stats["wait_s"] += time.perf_counter() - started
            yield item, built
        return
    side = torch.cuda.Stream(device) if device.type == "cuda" else None
    if side is not None:  # what the caller queued so far (e.g. the epoch's row indices) comes first
        side.wait_stream(torch.cuda.current_stream(device))
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                if side is not None:
                    with torch.cuda.stream(side):
                        built = timed(item)
                        ready = torch.cuda.Event()
                        ready.record(side)
                else:
                    built, ready = timed(item), None
                slots.put((item, built, ready))
        except BaseException as err:  # handed to the consumer, raised there
            slots.put((_DONE, err, None))
            return
        slots.put((_DONE, None, None))

    worker = threading.Thread(target=produce, name="sercache-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            started = time.perf_counter()
            item, built, ready = slots.get()
            stats["wait_s"] += time.perf_counter() - started
            if item is _DONE:
                if built is not None:
                    raise built
                return
            if ready is not None:
                current = torch.cuda.current_stream(device)
                current.wait_event(ready)
                _record_stream(built, current)
            yield item, built
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                pass
            worker.join(timeout=0.05)


def _record_stream(value: object, stream: torch.cuda.Stream) -> None:
    """Tell the caching allocator that tensors made on the side stream are used on `stream` now."""
    if isinstance(value, torch.Tensor):
        if value.is_cuda:
            value.record_stream(stream)
    elif isinstance(value, dict):
        for v in value.values():
            _record_stream(v, stream)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _record_stream(v, stream)
