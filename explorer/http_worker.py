"""gunicorn's gthread worker, serving a client's next request on the same thread when it comes at once.

Why: on a kept-alive connection, gthread hands each request over twice: the thread that answered gives the
connection back to the worker's main loop (a wake-up through its queue), which waits for it in epoll and then
hands it to a thread again (another wake-up). An integrator's script sends its requests one after the other,
each right after the previous answer: those hand-overs were ~0.2 ms of the ~0.45 ms of ``GET /system``
(Orthanc: 0.09 ms, a thread per connection that reads the next request itself).

Here, after an answer on a kept-alive plain connection, the thread waits a little for the next request
(``LINGER`` seconds, in short steps, and only while no other connection waits for a thread) and serves it
directly; otherwise the connection goes back to the main loop as before.

And the workers share the connections evenly: gthread's workers accept competitively, and a kept-alive
connection stays with the worker that took it. Four clients uploading at once were seen served by three
workers, one of them serving two (sharing one interpreter lock) while another served none. Each worker
publishes its connection count (``loads``, shared memory made by the master, gunicorn_conf.py); one that
has more connections than another leaves a pending connection to it for up to ``ACCEPT_YIELD`` seconds per
connection of difference, then takes it itself, as the DICOM server does (scp.DicomServer._left_to_others).
"""

from __future__ import annotations

import multiprocessing
import os
import select
import ssl
import time

from gunicorn.workers.gthread import ThreadWorker

# Seconds a thread waits for the next request of its connection (HTTP_LINGER_MS, 0: gthread's behaviour)
LINGER = float(os.environ.get("HTTP_LINGER_MS", "2")) / 1000
_STEP = 0.0005          # the waiting is checked in steps: another connection may need the thread meanwhile
_MAX_IN_A_ROW = 1000    # requests served on one thread before the connection goes back to the main loop
ACCEPT_YIELD = 0.02     # seconds a pending connection is left to a less busy worker, per connection of difference

# Connections per worker slot, -1 for a free slot: made in the master (loads_create), inherited by the fork
loads = None


def loads_create(slots: int) -> None:
    global loads
    loads = multiprocessing.Array("i", [-1] * max(1, slots), lock=False)


def slot_free(used: set[int]) -> int | None:
    """A slot for a worker being forked, given those of the live workers (None: more workers than slots)."""
    if loads is None:
        return None
    return next((n for n in range(len(loads)) if n not in used), None)


# Bytes of a request body left unread by its answer (a 401, a 413, a 404 before the upload is read) that are
# still read and dropped to keep the connection; beyond, it is closed: draining gigabytes a client sends would
# hold a thread for nothing.
UNREAD_BODY_DRAINED = 1 << 20


def body_left_unread(req) -> float:
    """Bytes of ``req``'s body not read yet (infinite when unknown: chunked, or up to the end of the stream)."""
    reader = getattr(getattr(req, "body", None), "reader", None)
    if reader is None:
        return 0
    if hasattr(reader, "length"):                  # Content-Length
        return reader.length
    if getattr(reader, "parser", None) is not None or getattr(reader, "finished", True) is False:
        return float("inf")                         # chunked or until the end, not read to its end
    return 0


class LingeringThreadWorker(ThreadWorker):
    slot: int | None = None             # set by gunicorn_conf.pre_fork
    _accept_paused_until = 0.0
    _left_since: float | None = None     # when this worker first left the pending connection to another

    def init_process(self):
        self._publish()
        super().init_process()

    def _publish(self) -> None:
        if loads is not None and self.slot is not None:
            loads[self.slot] = self.nr_conns

    def _busier_by(self) -> int:
        if loads is None or self.slot is None:
            return 0
        others = [n for i, n in enumerate(loads[:]) if i != self.slot and n >= 0]
        return self.nr_conns - min(others) if others else 0

    def accept(self, listener):
        busier_by = self._busier_by()
        now = time.monotonic()
        if busier_by > 0 and self.alive:
            if self._left_since is None or now - self._left_since > ACCEPT_YIELD * busier_by + 0.01:
                self._left_since = now       # a new pending connection (the last one was taken meanwhile)
            if now - self._left_since < ACCEPT_YIELD * busier_by:
                # Not from the poller for a moment (the listener stays readable: no busy loop meanwhile)
                self._accept_paused_until = min(now + 0.002, self._left_since + ACCEPT_YIELD * busier_by)
                self.set_accept_enabled(False)
                return
        self._left_since = None
        super().accept(listener)
        self._publish()

    def set_accept_enabled(self, enabled):
        if enabled and time.monotonic() < self._accept_paused_until:
            return
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout):
        if self._accept_paused_until:
            remaining = self._accept_paused_until - time.monotonic()
            if remaining > 0:
                timeout = min(timeout, remaining)       # back in time to listen again
            else:
                self._accept_paused_until = 0.0
                if self.alive and self.nr_conns < self.worker_connections:
                    self.set_accept_enabled(True)
        self._publish()          # the kept-alive connections closed by the loop since
        super().wait_for_and_dispatch_events(timeout)
        self._publish()          # the connections accepted, finished and closed meanwhile

    def handle_request(self, req, conn):
        keepalive = super().handle_request(req, conn)
        return keepalive and body_left_unread(req) <= UNREAD_BODY_DRAINED

    def handle(self, conn):
        keepalive = super().handle(conn)
        served = 1
        while keepalive is True and served < _MAX_IN_A_ROW and self._next_request_comes(conn):
            keepalive = super().handle(conn)
            served += 1
        return keepalive

    def _next_request_comes(self, conn) -> bool:
        """Whether the connection's next request arrives within LINGER while no other waits for a thread."""
        if isinstance(conn.sock, ssl.SSLSocket):      # poll() would not see what TLS already decrypted
            return False
        unreader = getattr(conn.parser, "unreader", None)
        if unreader is not None and unreader.buf.getvalue():   # sent right behind the last one, already read
            return True
        poller = select.poll()
        try:
            poller.register(conn.sock, select.POLLIN)
        except (OSError, ValueError):
            return False
        waited = 0.0
        while waited < LINGER:
            # A stopping worker, or another connection waiting for a thread (concurrent.futures' queue of the
            # pool): this connection goes back to the main loop
            if not self.alive or not self.tpool._work_queue.empty():
                return False
            events = poller.poll(_STEP * 1000)
            if events:
                return not events[0][1] & (select.POLLERR | select.POLLNVAL)
            waited += _STEP
        return False
