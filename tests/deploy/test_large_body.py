"""A body over the limit is answered 413, never a reset connection (issue #8, defect 11).

The server reads and discards what the client still sends (up to 4 MiB) before it answers
and closes, so a client that is still writing its body, as most HTTP clients do before
they read an answer, sees the 413 instead of a connection reset.
"""

from __future__ import annotations

import json
import socket
import time

from tests.deploy.processes import clean_env, wait_ready
from tests.deploy.traffic import ADD

TOO_LARGE = {
    "status": "false",
    "message": "The request body is larger than 65536 bytes.",
    "data": None,
}
BODY_BYTES = 3_000_000
CHUNK = 64 * 1024


def _post_slowly(port: int) -> tuple[bytes, str | None]:
    """POST a 3 MB body in 64 KiB chunks a millisecond apart, then read the answer.

    Returns the raw answer and the socket error met while sending (None if none)."""
    body = b'{"userName": "acme", "name": "' + b"x" * BODY_BYTES + b'"}'
    head = (
        f"POST {ADD} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Connection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    error = None
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(head)
            for start in range(0, len(body), CHUNK):
                sock.sendall(body[start : start + CHUNK])
                time.sleep(0.001)
        except OSError as exc:
            error = type(exc).__name__
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError as exc:
            error = error or type(exc).__name__
    return answer, error


def test_a_3_mb_body_sent_slowly_gets_the_413_not_a_reset(servers, tmp_path):
    server = servers("large", env=clean_env(DIALBASE_DATABASE_URL=f"sqlite:///{tmp_path}/b.db"))
    wait_ready(server)
    port = int(server.url.rsplit(":", 1)[1])
    for _ in range(3):
        answer, error = _post_slowly(port)
        assert error is None
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert json.dumps(TOO_LARGE, separators=(",", ":")).encode() in answer  # chunked
