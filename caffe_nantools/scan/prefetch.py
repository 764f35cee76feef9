"""Reading ahead in a thread, so that a store's reads overlap the checks (numpy and LMDB
let go of the GIL while they work)."""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")


def prefetched(batches: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``batches``, read up to ``depth`` items ahead in a thread. When the consumer stops early,
    the reader is stopped and joined before this returns, so the store can be closed safely."""
    items: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:  # handed to the consumer, which raises it
            items.put(e)
        items.put(done)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.1)
        thread.join()
