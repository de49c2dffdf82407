"""Two threads joined by a bounded hand-off of 1 MiB buffers.

Volumes are written and read by two threads so that both cores work: hashing,
ChaCha20-Poly1305, zfec and file I/O all release the GIL. A producer thread fills
buffers from a small pool and sends messages; the calling thread consumes them
and gives the buffers back. Memory is bounded by the pool, whatever the sizes.
If either side fails, the other stops at its next hand-off and the first error
is raised in the calling thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_POLL = 0.05


class Stage(threading.Thread):
    """A thread that keeps the exception its function raised (re-raised by the caller)."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        """Runs the function, recording its exception instead of printing it."""
        try:
            self._fn()
        except BaseException as exc:  # re-raised by run_pipeline after join()
            self.error = exc


class Stopped(Exception):
    """The consumer gave up: the producer returns quietly."""


END = object()
"""The message a producer sends last (sent for it by :func:`run_pipeline`)."""


class Handoff:
    """A pool of buffers and a queue of messages between one producer and one consumer."""

    def __init__(self, buffers: int, size: int, depth: int = 8) -> None:
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(buffers):
            self._free.put(bytearray(size))
        self._full: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()

    def take(self) -> bytearray:
        """A free buffer (producer side); waits for one."""
        while True:
            try:
                return self._free.get(timeout=_POLL)
            except queue.Empty:
                if self._stopped.is_set():
                    raise Stopped from None

    def send(self, message: Any) -> None:
        """Sends a message to the consumer (producer side)."""
        while True:
            if self._stopped.is_set():
                raise Stopped
            try:
                self._full.put(message, timeout=_POLL)
                return
            except queue.Full:
                continue

    def receive(self) -> Any:
        """The next message (consumer side)."""
        return self._full.get()

    def give_back(self, buffer: bytearray) -> None:
        """Returns a buffer to the pool (consumer side)."""
        self._free.put(buffer)

    def stop(self) -> None:
        """Tells the producer to stop at its next hand-off."""
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        """Whether the consumer asked to stop."""
        return self._stopped.is_set()


def run_pipeline(
    name: str,
    handoff: Handoff,
    produce: Callable[[Handoff], None],
    consume: Callable[[Any], None],
) -> None:
    """Runs ``produce`` in a thread and feeds its messages to ``consume`` in this one.

    Raises:
        BaseException: the consumer's error, else the producer's.
    """

    def producer() -> None:
        try:
            produce(handoff)
        except Stopped:
            return
        finally:
            if not handoff.stopped:
                handoff.send(END)

    stage = Stage(name, producer)
    stage.start()
    try:
        while (message := handoff.receive()) is not END:
            consume(message)
    except BaseException:
        handoff.stop()
        stage.join()
        raise
    stage.join()
    if stage.error is not None:
        raise stage.error
