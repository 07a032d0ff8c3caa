"""The paper store's writes on a thread of their own, so that a poll's decisions are not
held up by the write of the poll before.

A write (:meth:`~.store.PaperStore.write`: one poll's records and cursor, one
transaction) takes a few round trips to the database; done in the follow loop, every
commit that arrived meanwhile waited for it. :class:`WriteBehind` takes each poll's write
and makes it on its thread, in the order given, one transaction each as before, while the
loop reads and decides the next commit. Nothing of the commit contract changes: what is
stored is always the records of the rows up to the stored cursor. A follower killed with
writes still queued loses only writes of rows after the stored cursor, which it reads
and decides again when started (the resume, :mod:`.follow`), exactly as if it had been
killed before deciding them.

* **Order and errors.** Writes land in the order given. A write that fails (the store
  refuses a write that does not follow its own, an error of the database that waiting
  cannot fix) stops every write after it, and the error is raised in the follow loop at
  its next write or :meth:`~WriteBehind.flush`. A database that cannot be reached is
  retried by the store itself, with backoff, on this thread; meanwhile the loop goes on
  deciding until :data:`MAX_QUEUED` writes wait, then waits too.
* **Flush.** Whatever reads the store, or must follow every write made so far (a
  session's close, a resume), flushes first: it returns once every queued write has
  landed. :meth:`~WriteBehind.close` lands what is queued and ends the thread; a second
  interrupt (SIGINT, SIGTERM) while it waits on an unreachable database stops waiting.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from kalshi_pipeline.paper.store import PaperStore

MAX_QUEUED = 10_000  # polls written behind at most: the loop waits beyond

__all__ = ["MAX_QUEUED", "WriteBehind"]


class WriteBehind:
    """:meth:`PaperStore.write` on a thread of its own, in order (see the module
    docstring). Close it with :meth:`close`, or use it as a context manager."""

    def __init__(self, store: PaperStore, max_queued: int = MAX_QUEUED) -> None:
        self.store = store
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="paper-writes", daemon=True)
        self._thread.start()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write(self, *args: Any, **kwargs: Any) -> None:
        """:meth:`PaperStore.write` with these arguments, made after those given before;
        raises the error of a write that failed."""
        self._raise_failure()
        self._queue.put((args, kwargs))

    def flush(self) -> None:
        """Return once every write given so far has landed; raise the error of one that
        failed."""
        self._queue.join()
        self._raise_failure()

    def close(self) -> None:
        """Land the queued writes and end the thread (a failed write's error is left to
        :meth:`flush`: closing after a failure is how a stopped loop ends)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:  # nothing lands after a write that failed
                    args, kwargs = item
                    self.store.write(*args, **kwargs)
            except BaseException as exc:  # raised in the follow loop, see _raise_failure
                self._error = exc
            finally:
                self._queue.task_done()
