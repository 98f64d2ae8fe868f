"""``Tokens.verify`` remembers tokens it verified, by their text: only tokens signed with
our key get in, the memo is bounded, and what it answers is what decoding answers."""

from __future__ import annotations

import time

import jwt
import pytest

from dialbase.compat import tokens as tokens_module
from dialbase.compat.tokens import Claims, Tokens

SECRET = "memo-test-secret-" + "0123456789abcdef" * 4


def _tokens() -> Tokens:
    return Tokens(sessionmaker=None, secret=SECRET)  # type: ignore[arg-type]  (never read)


async def test_a_verified_token_is_answered_from_the_memo_with_the_same_claims():
    tokens = _tokens()
    token, jti = await tokens.issue("acme", now=1_800_000_000)
    first = await tokens.verify(token)
    assert first == Claims("acme", jti, 1_800_003_600.0)
    assert await tokens.verify(token) is first
    assert list(tokens._verified) == [token]


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        jwt.encode({"sub": "a", "iat": 1, "exp": 2, "jti": "x"}, "other-" + "k" * 64, "HS512"),
        jwt.encode({"sub": "a", "iat": 1, "exp": 2, "jti": "x"}, SECRET, "HS256"),
        jwt.encode({"sub": "a", "iat": 1, "exp": 2}, SECRET, "HS512"),
        jwt.encode({"sub": 7, "iat": 1, "exp": 2, "jti": "x"}, SECRET, "HS512"),
    ],
    ids=["garbage", "other-key", "hs256", "no-jti", "sub-not-text"],
)
async def test_a_token_that_does_not_verify_never_enters_the_memo(bad):
    tokens = _tokens()
    assert await tokens.verify(bad) is None
    assert await tokens.verify(bad) is None
    assert tokens._verified == {}


async def test_the_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(tokens_module, "MEMO_SIZE", 3)
    tokens = _tokens()
    issued = [(await tokens.issue(f"user{i}", now=time.time()))[0] for i in range(5)]
    for token in issued:
        assert await tokens.verify(token) is not None
        assert len(tokens._verified) <= 3
    again = await tokens.verify(issued[0])  # dropped from the memo: decoded again
    assert again is not None and again.username == "user0"


async def test_an_expired_token_verifies_and_the_caller_sees_its_expiry():
    tokens = _tokens()
    token, _ = await tokens.issue("acme", now=1_000)
    claims = await tokens.verify(token)
    assert claims is not None and claims.expires_at == 4_600.0 < time.time()
