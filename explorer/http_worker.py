"""gunicorn's gthread worker, serving a client's next request on the same thread when it comes at once.

Why: on a kept-alive connection, gthread hands each request over twice: the thread that answered gives the
connection back to the worker's main loop (a wake-up through its queue), which waits for it in epoll and then
hands it to a thread again (another wake-up). An integrator's script sends its requests one after the other,
each right after the previous answer: those hand-overs were ~0.2 ms of the ~0.45 ms of ``GET /system``
(Orthanc: 0.09 ms, a thread per connection that reads the next request itself).

Here, after an answer on a kept-alive plain connection, the thread waits a little for the next request
(``LINGER`` seconds, in short steps, and only while no other connection waits for a thread) and serves it
directly; otherwise the connection goes back to the main loop as before.
"""

from __future__ import annotations

import os
import select
import ssl

from gunicorn.workers.gthread import ThreadWorker

# Seconds a thread waits for the next request of its connection (HTTP_LINGER_MS, 0: gthread's behaviour)
LINGER = float(os.environ.get("HTTP_LINGER_MS", "2")) / 1000
_STEP = 0.0005          # the waiting is checked in steps: another connection may need the thread meanwhile
_MAX_IN_A_ROW = 1000    # requests served on one thread before the connection goes back to the main loop


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
