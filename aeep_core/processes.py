"""Work that leaves the UI's process: one service object in a child process.

The app's process renders, takes keys and writes the store. Training, choosing and
embedding run in a child process instead: threads of one process share one GIL, and on a
slow machine the UI thread lost to the trainer (BENCHMARKS.md, issue 27). A
:class:`ServiceProcess` runs an object in a child and talks to it over two queues:

* calls go in over one queue and are made in the order sent (``send``: no reply;
  ``call``: wait for the return value), so an answer, a correction and an undo reach the
  service in the order the person gave them;
* the service pushes events back (a chosen batch, progress) through the ``emit`` function
  its factory receives; :meth:`ServiceProcess.events` hands them over. A service whose own
  thread fails sets ``broken`` to the exception: the child reports it and exits.

Tensors sent either way go through ``torch.multiprocessing``: their storage moves to shared
memory once, so a pool of images is not copied per message. A child whose parent dies
exits by itself (it watches the parent's sentinel); a child that dies is reported by
:class:`ServiceCrashed` on the next call or poll, and the owner starts a new one.

Children are forked from a *forkserver* that has imported torch once (where the platform
has one; spawned elsewhere), so starting or restarting a service takes a fraction of a
second instead of an import of torch.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

import torch.multiprocessing as torch_mp

Emit = Callable[[Any], None]
#: builds the service in the child: ``factory(emit, *args)``
Factory = Callable[..., Any]

_STOP = "__stop__"
# What every child needs: imported once by the forkserver, so a child starts in a fraction
# of a second (the engine's modules pull in torch, numpy, scikit-learn and scipy).
_PRELOAD = ["torch", "numpy", "aeep_core.processes", "aeep_core.session.trainer_process"]


class ServiceCrashed(RuntimeError):
    """The child process died or its service raised; the message says how."""


def _context() -> Any:
    """forkserver (torch imported once, then each child is a cheap fork) where the
    platform has it, else spawn; never plain fork: the app's process has threads."""
    _start_resource_tracker()
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = torch_mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return torch_mp.get_context("spawn")


def _start_resource_tracker() -> None:
    """multiprocessing's resource tracker hands the child our stderr's file descriptor;
    under Textual, stderr is a capture object without one (fileno() is -1), and starting
    the tracker then fails. Start it with the real stderr (once; later calls do nothing)."""
    from multiprocessing import resource_tracker

    saved = sys.stderr
    try:
        usable = saved is not None and saved.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = False
    try:
        if not usable:
            sys.stderr = sys.__stderr__ if sys.__stderr__ is not None else open(os.devnull, "w")  # noqa: SIM115
        resource_tracker.ensure_running()
    finally:
        sys.stderr = saved


def warm_up() -> None:
    """Start the forkserver now (it imports torch and the engine: seconds), in the
    background, so the first trainer does not wait for it. Safe to call more than once."""

    def start() -> None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            from multiprocessing import forkserver

            _context()
            forkserver.ensure_running()

    threading.Thread(target=start, name="aeep-forkserver", daemon=True).start()


def _serve(factory: Factory, args: tuple[Any, ...], inbox: Any, outbox: Any) -> None:
    """The child's main loop: build the service, then make each call in order."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        # Also mid-call (a retrain, a chunk of photos): nobody is left to work for.
        threading.Thread(target=_exit_with, args=(parent,), name="aeep-parent-watch", daemon=True).start()
    service = None
    try:
        service = factory(outbox.put, *args)
        while True:
            broken = getattr(service, "broken", None)
            if broken is not None:  # a thread of the service failed: report it and exit
                raise broken
            try:
                ident, method, call_args = inbox.get(timeout=0.5)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return  # the UI's process is gone (kill -9): nobody to work for
                continue
            if method == _STOP:
                return
            result = getattr(service, method)(*call_args)
            if ident is not None:
                outbox.put(("reply", ident, result))
    except BaseException:
        outbox.put(("failed", traceback.format_exc(limit=8)))
        raise SystemExit(1) from None
    finally:
        close = getattr(service, "close", None)
        if close is not None:
            close()


def _exit_with(parent: Any) -> None:
    """Exit this child as soon as its parent process is gone (a ``kill -9`` of the app):
    what it was doing is lost, and what it wrote is made safe by its own format (the
    feature store cuts a torn chunk)."""
    parent.join()
    os._exit(0)


class ServiceProcess:
    """An object built by ``factory(emit, *args)`` in a child process; see the module doc."""

    def __init__(self, factory: Factory, *args: Any, name: str = "aeep-service"):
        ctx = _context()
        self._inbox, self._outbox = ctx.Queue(), ctx.Queue()
        self._process = ctx.Process(target=_serve, args=(factory, args, self._inbox, self._outbox), name=name, daemon=True)
        self._ids = itertools.count()
        self._replies: dict[int, Any] = {}
        self._events: deque[Any] = deque()
        self._failure: str | None = None
        self._lock = threading.Lock()  # one reader of the outbox at a time

    def start(self) -> ServiceProcess:
        self._process.start()
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._failure is None and self._process.is_alive()

    def check(self) -> None:
        """Raise ServiceCrashed if the child is gone; reads nothing while it lives, so a
        caller that must not wait (the UI's thread) never reads a message half written."""
        self._check()

    def send(self, method: str, *args: Any) -> None:
        """Call ``method(*args)`` in the child, after every call sent before; no reply."""
        self._check()
        self._inbox.put((None, method, args))

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Call ``method(*args)`` in the child and return its result (TimeoutError after ``timeout`` s)."""
        self._check()
        ident = next(self._ids)
        self._inbox.put((ident, method, args))
        deadline = None if timeout is None else time.monotonic() + timeout
        while ident not in self._replies:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"{self._process.name}: no reply to {method} within {timeout} s")
            self._pump(0.1 if left is None else min(0.1, left))
            if ident not in self._replies:
                self._check()
        return self._replies.pop(ident)

    def events(self, timeout: float = 0.0) -> list[Any]:
        """Every event the service emitted so far (waiting up to ``timeout`` s for a first
        one); ServiceCrashed once none are left and the child is gone."""
        if not self._events:
            self._pump(timeout)
        with self._lock:
            out = list(self._events)
            self._events.clear()
        if not out:
            self._check()
        return out

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the service to finish, then make sure the child is gone."""
        if self._process.is_alive():
            try:
                self._inbox.put((None, _STOP, ()))
            except (OSError, ValueError):
                pass
            self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        for q in (self._inbox, self._outbox):
            q.cancel_join_thread()  # a child killed mid-read must not hang our exit
            q.close()

    # --- internals ----------------------------------------------------------------------
    def _check(self) -> None:
        """Raise ServiceCrashed if the service failed or the child is gone (never called
        while holding the outbox lock)."""
        if self._failure is not None:
            raise ServiceCrashed(self._failure)
        code = self._process.exitcode
        if code is None:
            return
        if code >= 0:
            self._pump(0.0)  # it exited by itself: its last words (a traceback) are whole
        if self._failure is None:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            self._failure = f"{self._process.name} (pid {self._process.pid}) {how}"
        raise ServiceCrashed(self._failure)

    def _pump(self, timeout: float) -> None:
        with self._lock:
            try:
                message = self._outbox.get(timeout=timeout) if timeout > 0 else self._outbox.get_nowait()
            except queue.Empty:
                return
            while True:
                self._take(message)
                try:
                    message = self._outbox.get_nowait()
                except queue.Empty:
                    return

    def _take(self, message: Any) -> None:
        if isinstance(message, tuple) and message and message[0] == "reply":
            self._replies[message[1]] = message[2]
        elif isinstance(message, tuple) and message and message[0] == "failed":
            self._failure = f"{self._process.name} (pid {self._process.pid}) failed:\n{message[1]}"
        else:
            self._events.append(message)


def child_threads(threads: int) -> None:
    """Use the parent's torch thread count in a child, so its arithmetic is the same
    (a sum split over other threads rounds differently) and two processes do not fight;
    and as many for the native pools scikit-learn and numpy use (OpenMP for k-means,
    OpenBLAS), which otherwise take every core: on a 2-core machine the trainer's
    choice then took the UI's core, and keys typed meanwhile took 80-150 ms. (This
    thread's: a thread the child starts calls :func:`native_threads_as_torch` itself.)"""
    import torch

    torch.set_num_threads(max(1, threads))
    native_threads_as_torch()


def native_threads_as_torch() -> None:
    """Give this thread's native pools (OpenMP for scikit-learn's k-means, OpenBLAS) as
    many threads as torch has. OpenMP keeps its thread count per thread, and a thread
    started later gets the default, every core: a limit set in a process's main thread
    does not reach its trainer thread, whose k-means then ran on every core, the UI's
    included (measured: threadpoolctl reported 2 OpenMP threads there on 2 cores)."""
    import sklearn.cluster  # noqa: F401 -- loads its OpenMP runtime, so the limit reaches it
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=torch.get_num_threads())
