"""The local runner's overlap: each stage in its own thread, joined by small bounded queues.

Why threads: a GPU stage waits on the device (the GIL is released in CUDA calls, as in the simulated
backends' sleep), and the CPU stages spend their time in OpenCV/Pillow/zlib, which release the GIL too.
So while the GPU stage works on batch k, decode fills batch k+1 and encode/write drain batch k-1, and a
single process keeps the GPU busy instead of alternating with the CPU. A step may have more than one
thread (a model stage whose backend guards its own device section: one batch's CPU pre/post work runs
while another holds the device); order is kept only where every step has one thread. An exception
anywhere stops every thread and is raised in the caller.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_END = object()
Step = tuple  # (batch size, function over a batch[, threads])


class _Pipe:
    def __init__(self, n: int, depth: int):
        self.stop = threading.Event()
        self.queues: list[queue.Queue] = [queue.Queue(maxsize=depth) for _ in range(n)]
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.running: dict[int, int] = {}  # step -> its threads still working

    def finish(self, i: int) -> bool:
        """One thread of step i is done; True for the last one (it passes the end downstream)."""
        with self.lock:
            self.running[i] -= 1
            return self.running[i] == 0

    def put(self, i: int, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queues[i].put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self, i: int) -> Any:
        while not self.stop.is_set():
            try:
                return self.queues[i].get(timeout=0.1)
            except queue.Empty:
                continue
        return _END

    def fail(self, e: BaseException) -> None:
        self.errors.append(e)
        self.stop.set()


def run_threaded(source: Iterable, steps: list[Step], depth: int = 2, chunk: int = 8) -> Iterator:
    """Yield every item of `source` after all `steps`, each step re-batching its input to its batch size."""
    pipe = _Pipe(len(steps) + 1, depth)

    def feed() -> None:
        try:
            buf: list = []
            for x in source:
                buf.append(x)
                if len(buf) >= chunk:
                    pipe.put(0, buf)
                    buf = []
            if buf:
                pipe.put(0, buf)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            pipe.fail(e)
        finally:
            pipe.put(0, _END)

    def work(i: int, batch_size: int, fn: Callable[[list], list]) -> None:
        try:
            buf: list = []
            while (item := pipe.get(i)) is not _END:
                buf.extend(item)
                while len(buf) >= batch_size:
                    pipe.put(i + 1, fn(buf[:batch_size]))
                    buf = buf[batch_size:]
            pipe.put(i, _END)  # the step's other threads see the end too
            if buf and not pipe.stop.is_set():
                pipe.put(i + 1, fn(buf))
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            pipe.fail(e)
        finally:
            if pipe.finish(i):
                pipe.put(i + 1, _END)

    threads = [threading.Thread(target=feed, name="l2i-read", daemon=True)]
    for i, (bs, fn, *n) in enumerate(steps):
        pipe.running[i] = n[0] if n else 1
        threads += [threading.Thread(target=work, args=(i, bs, fn), name=f"l2i-step{i}.{k}", daemon=True)
                    for k in range(pipe.running[i])]
    for t in threads:
        t.start()
    try:
        while (item := pipe.get(len(steps))) is not _END:
            yield from item
    finally:
        pipe.stop.set()
        for t in threads:
            t.join()
    if pipe.errors:
        raise pipe.errors[0]
