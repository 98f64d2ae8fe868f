"""``PROMETHEUS_MULTIPROC_DIR`` for ``dialbase serve``, without importing ``prometheus_client``
(which reads the variable once, when first imported: the server's workers import it after
``serve`` set it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def multiprocess_dir(workers: int) -> Iterator[Path | None]:
    """With several workers, a new empty folder named by ``PROMETHEUS_MULTIPROC_DIR`` for
    this start, removed at the end; with one worker the metrics stay in the process (the
    variable is unset, whatever the environment said)."""
    if workers <= 1:
        os.environ.pop(MULTIPROC_ENV, None)
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="dialbase-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)
