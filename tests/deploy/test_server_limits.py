"""A real ``dialbase serve`` (two workers) bounds what a client may hold: request heads must
arrive within ``DIALBASE_HEADER_TIMEOUT`` and fit ``DIALBASE_MAX_HEADER_BYTES``, bodies must
arrive within ``DIALBASE_BODY_TIMEOUT``; idle time between keep-alive requests does not count.

Raw sockets on 127.0.0.1; every read has a timeout, every loop a bound.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.deploy import processes
from tests.deploy.processes import Server, clean_env, wait_ready

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
MAX_HEADER_BYTES = 16 * 1024
SLACK = 8.0  # generous: two cores shared with other test runs
HALF_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("server-limits")
    env = clean_env(
        DIALBASE_DATABASE_URL=f"sqlite:///{folder}/limits.db",
        DIALBASE_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        DIALBASE_BODY_TIMEOUT=str(BODY_TIMEOUT),
        DIALBASE_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
    )
    started = processes.start_server(folder, "limits", env=env, workers=2)
    try:
        wait_ready(started)
        yield started
    finally:
        processes.stop(started)


def _connect(server: Server, timeout: float = HEADER_TIMEOUT + SLACK) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.settimeout(timeout)
    return sock


def _read_until_closed(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Everything the server sends until it closes; raises ``TimeoutError`` if it doesn't."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while len(received) < limit and (chunk := sock.recv(65536)):
            received += chunk
    return received


def _read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length (status line, headers and body)."""
    received = b""
    while b"\r\n\r\n" not in received and (chunk := sock.recv(65536)):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def _healthy(server: Server) -> bool:
    return httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_a_half_sent_request_head_is_answered_408_and_closed(server: Server):
    with _connect(server) as sock:
        sock.sendall(HALF_HEAD)
        started = time.monotonic()
        reply = _read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert time.monotonic() - started < HEADER_TIMEOUT + SLACK


def test_a_connection_that_sends_nothing_is_closed(server: Server):
    with _connect(server) as sock:
        assert _read_until_closed(sock) == b""


def test_a_100_kb_header_is_refused_with_431_and_never_served(server: Server):
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    with _connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)  # the server may close before reading it all
        reply = _read_until_closed(sock)
    # The 431 can be lost to the reset caused by the unread rest of the head.
    assert reply.startswith(b"HTTP/1.1 431 ") or reply == b"", reply[:100]
    assert _healthy(server)


def test_a_header_just_over_the_limit_in_one_piece_is_refused_with_431(server: Server):
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 17_000 + b"\r\n\r\n"
    with _connect(server) as sock:
        sock.sendall(head)
        reply = _read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:100]


def test_a_header_under_the_limit_is_served(server: Server):
    response = httpx.get(f"{server.url}/healthz", headers={"X-Big": "a" * 15_000}, timeout=10)
    assert response.status_code == 200


def test_a_stalled_body_is_cut_off(server: Server):
    head = (
        b"POST /ca_apis/AddCampaignData HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    )
    with _connect(server, timeout=BODY_TIMEOUT + SLACK) as sock:
        sock.sendall(head + b'{"userName": "acme", ')
        started = time.monotonic()
        reply = _read_until_closed(sock)
    assert time.monotonic() - started < BODY_TIMEOUT + SLACK
    assert not reply.startswith(b"HTTP/1.1 2"), reply[:100]
    assert "Exception in ASGI application" not in server.output()


def test_a_keep_alive_client_idle_longer_than_the_header_timeout_is_still_served(
    server: Server,
):
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with _connect(server) as sock:
        for _ in range(3):
            sock.sendall(request)
            reply = _read_response(sock)
            assert reply.startswith(b"HTTP/1.1 200 "), reply[:100]
            time.sleep(HEADER_TIMEOUT * 1.5)  # idle, within the 5 s keep-alive timeout


def test_many_stalled_connections_are_all_closed_and_the_server_still_answers(server: Server):
    stalled = [_connect(server, timeout=HEADER_TIMEOUT + SLACK) for _ in range(200)]
    try:
        for sock in stalled:
            sock.sendall(HALF_HEAD)
        assert _healthy(server)  # while they wait
        started = time.monotonic()
        replies = [_read_until_closed(sock) for sock in stalled]
        assert time.monotonic() - started < HEADER_TIMEOUT + SLACK
    finally:
        for sock in stalled:
            sock.close()
    assert all(reply.startswith(b"HTTP/1.1 408 ") for reply in replies)
    assert _healthy(server)
