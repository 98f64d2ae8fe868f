"""Callback URLs: http/https to public addresses only, unless private ones are allowed."""

from __future__ import annotations

import asyncio
import socket

import pytest

from dialbase.callback_urls import check_callback_url, check_callback_url_async

PUBLIC = ["http://8.8.8.8/hook", "https://1.1.1.1:8443/a/b?c=d", "http://[2606:4700::1111]/x"]
NOT_PUBLIC = [
    "http://127.0.0.1/hook",  # loopback
    "http://127.1.2.3:8080/",
    "http://[::1]/",
    "http://10.1.2.3/",  # private
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://[fd00::1]/",  # unique local
    "http://169.254.169.254/latest/meta-data/",  # link-local (cloud metadata)
    "http://[fe80::1]/",
    "http://0.0.0.0/",  # unspecified
    "http://[::]/",
    "http://224.0.0.1/",  # multicast
    "http://[ff02::1]/",
    "http://240.0.0.1/",  # reserved
    "http://255.255.255.255/",
    "http://100.64.0.1/",  # shared address space (carrier NAT)
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
    "http://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
    "http://localhost/",  # a name that resolves to loopback
    "http://LOCALHOST:9/",
    "http://2130706433/",  # 127.0.0.1 written as one number: resolved, then refused
]
NOT_HTTP = [
    "",
    "   ",
    "ftp://8.8.8.8/file",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "gopher://8.8.8.8/",
    "8.8.8.8/hook",  # no scheme
    "//8.8.8.8/hook",
    "http:///hook",  # no host
    "http://8.8.8.8:99999/",  # not a port
    "http://8.8.8.8:x/",
    "http://8.8.8.8/a b",  # a space
    "http://8.8.8.8/\x00",
    "http://user:pass@8.8.8.8/",  # credentials
    "http://8.8.8.8/#fragment",
    "http://" + "a" * 3000 + ".com/",
]


@pytest.mark.parametrize("url", PUBLIC)
def test_public_http_and_https_urls_are_accepted(url):
    assert check_callback_url(url, allow_private=False) is None


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_private_loopback_link_local_and_special_addresses_are_refused(url):
    reason = check_callback_url(url, allow_private=False)
    assert reason is not None and "non-public address" in reason


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_private_addresses_are_accepted_when_allowed(url):
    assert check_callback_url(url, allow_private=True) is None


@pytest.mark.parametrize("url", NOT_HTTP)
@pytest.mark.parametrize("allow_private", [False, True])
def test_anything_but_a_plain_http_or_https_url_is_refused_even_when_private_is_allowed(
    url, allow_private
):
    assert check_callback_url(url, allow_private=allow_private) is not None


@pytest.mark.parametrize("allow_private", [False, True])
def test_an_unresolvable_host_is_refused(allow_private):
    reason = check_callback_url("http://no-such-host.invalid/hook", allow_private=allow_private)
    assert reason == "the host name does not resolve"


def test_a_name_is_refused_when_any_address_it_resolves_to_is_private(monkeypatch):
    def resolve(host, port, *args, **kwargs):
        addresses = {"mixed.example": ["8.8.8.8", "10.0.0.5"], "public.example": ["8.8.4.4"]}
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 80))
            for address in addresses[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    assert check_callback_url("http://public.example/hook", allow_private=False) is None
    reason = check_callback_url("http://mixed.example/hook", allow_private=False)
    assert reason == "the host is, or resolves to, a non-public address (10.0.0.5)"


async def test_the_async_check_uses_the_resolver_it_is_given():
    answers = {"public.example": ["8.8.8.8"], "inside.example": ["192.168.0.7"]}

    async def resolve(host, port):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return answers[host]

    check = check_callback_url_async
    assert await check("https://public.example/x", False, resolve=resolve) is None
    assert await check("https://inside.example/x", False, resolve=resolve) == (
        "the host is, or resolves to, a non-public address (192.168.0.7)"
    )
    assert await check("https://inside.example/x", True, resolve=resolve) is None
    assert await check("https://other.example/x", True, resolve=resolve) == (
        "the host name does not resolve"
    )
    assert await check("ftp://public.example/x", False, resolve=resolve) == (
        "the URL is not an absolute http or https URL with a host"
    )


async def test_the_async_check_refuses_a_name_whose_resolver_does_not_answer_in_time():
    async def hung(host, port):
        await asyncio.sleep(60)
        return ["8.8.8.8"]

    reason = await check_callback_url_async(
        "http://slow.example/", False, resolve=hung, timeout=0.05
    )
    assert reason == "the host name does not resolve"


@pytest.mark.parametrize("url", PUBLIC + NOT_PUBLIC + NOT_HTTP)
async def test_the_async_check_agrees_with_the_blocking_one(url):
    assert await check_callback_url_async(url, False) == check_callback_url(url, False)
