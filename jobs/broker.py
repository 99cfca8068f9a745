"""django-q2's ORM broker (the embedded default's job queue), woken by the processes that queue a task instead
of polling the database 20 times a second.

The ORM broker's pusher asks the database for new tasks and, finding none, sleeps ``poll`` seconds: at 0.05 s
(settings.Q_CLUSTER, so that a job starts at once) an idle server spent 2.6% of a core on it, where Orthanc
idles at nothing. Here the pusher waits on a Unix datagram socket instead, and whoever queues a task sends it
one datagram: a job still starts at once, and an idle pusher looks at the database once a second (tasks queued
where the datagram cannot reach, another host of a scale-out, are seen then). When the socket cannot be bound
(another cluster of the same database on this host holds it) the pusher polls as django-q2 does.
"""

from __future__ import annotations

import hashlib
import os
import select
import socket
import time

from django.db import connections
from django_q.brokers.orm import ORM
from django_q.conf import Conf

IDLE_WAIT = 1.0         # seconds an idle pusher waits between looks at the database
FALLBACK_POLL = 0.05    # seconds between looks when it cannot listen (django-q2's "poll", as set before)


def _address() -> bytes:
    """An abstract Unix socket name (no file to clean up) of this job queue: one per database."""
    settings = connections[Conf.ORM].settings_dict
    key = f"{settings.get('ENGINE')}|{settings.get('HOST')}|{settings.get('PORT')}|{settings.get('NAME')}"
    return b"\0explorer-jobs-" + hashlib.sha1(key.encode()).hexdigest()[:16].encode()


class WakeableORM(ORM):
    _listener: socket.socket | None = None
    _listener_pid = 0
    _bind_failed = False

    def enqueue(self, task) -> int:
        task_id = super().enqueue(task)
        self.wake()
        return task_id

    @staticmethod
    def wake() -> None:
        """Tell the pusher a task is queued (nothing happens when none listens)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
                sender.sendto(b"!", _address())
        except OSError:
            pass

    def dequeue(self):
        tasks = super().dequeue()      # settings.Q_CLUSTER sets "poll" to 0: no sleep in there
        if tasks:
            return tasks
        listener = self._listening()
        if listener is None:
            time.sleep(FALLBACK_POLL)
            return None
        ready, _, _ = select.select([listener], [], [], IDLE_WAIT)
        if ready:
            try:
                while True:     # every wake-up queued so far: one look at the database serves them all
                    listener.recv(16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
        return None

    def _listening(self) -> socket.socket | None:
        if self._listener is not None and self._listener_pid == os.getpid():
            return self._listener
        if self._bind_failed:
            return None
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            listener.bind(_address())
        except OSError:
            listener.close()
            WakeableORM._bind_failed = True
            return None
        self._listener, self._listener_pid = listener, os.getpid()
        return listener
