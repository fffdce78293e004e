"""One request's outcome through the client and pool, against emulators over real HTTP: 429s, error
classes, routing, resting, credentials, proxies; and the endpoints file and replies it reads."""

from __future__ import annotations

import asyncio

import pytest

from rollkit.emulator.testing import get_stats, run_emulators
from rollkit.net.client import ChatClient, FatalEndpointError, OutageError
from rollkit.net.endpoints import (
    Endpoint,
    EndpointConfigError,
    EndpointPool,
    load_endpoints_toml,
    resolve_key,
)
from rollkit.net.replies import result_from_response


@pytest.fixture(scope="module")
def urls():
    with run_emulators(["--rpm", "6", "--window-seconds", "1", "--burst-seconds", "60"], ["--fault-500", "1"], [],
                       ["--require-key", "right-key"], ["--fault-429", "0.3", "--rpm", "100000"], ["--fault-malformed", "1"]) as found:
        yield dict(zip(["limited", "broken", "healthy", "locked", "flaky", "garbled"], found, strict=True))


def body(index: int, **extra) -> dict:
    return {"model": "m", "max_tokens": 400, "messages": [{"role": "user", "content": f"Question {index}?"}], **extra}


def endpoint(url: str, name: str, **fields) -> Endpoint:
    return Endpoint(name, "local", f"{url}/v1", "m", api_key="k", **fields)


def run(coro):
    return asyncio.run(coro)


def test_429s_pause_and_requeue_without_spending_attempts(urls):
    async def go():
        pool = EndpointPool([endpoint(urls["flaky"], "flaky")])
        async with ChatClient(pool, None, concurrency=8, max_attempts=1) as client:
            results = await asyncio.gather(*(client.complete(body(i)) for i in range(15)))
        return results, client.stats
    results, stats = run(go())
    assert all(r.ok for r in results)
    assert stats.rate_limited > 0 and stats.retries == 0 and stats.failed == 0


def test_bad_request_fails_the_record_at_once(urls):
    async def go():
        pool = EndpointPool([endpoint(urls["healthy"], "healthy")])
        async with ChatClient(pool, None, max_attempts=5) as client:
            return await client.complete(body(1, n=0)), client.stats
    result, stats = run(go())
    assert not result.ok and result.reason == "http_400" and stats.retries == 0


def test_a_reply_that_stays_unusable_fails_with_its_reason(urls):
    async def go():
        pool = EndpointPool([endpoint(urls["garbled"], "garbled")])
        async with ChatClient(pool, None, max_attempts=3, backoff=0.01) as client:
            return await client.complete(body(2)), client.stats
    result, stats = run(go())
    assert not result.ok and result.reason == "malformed" and stats.retries == 2


def test_an_endpoint_that_only_fails_is_an_outage_not_a_failed_record(urls):
    async def go():
        pool = EndpointPool([endpoint(urls["broken"], "broken")])
        async with ChatClient(pool, None, max_attempts=3, backoff=0.01, max_outage=1.5) as client:
            await client.complete(body(2))
    with pytest.raises(OutageError) as caught:
        run(go())
    port = urls["broken"].rsplit(":", 1)[1]
    assert f"broken (127.0.0.1:{port})" in str(caught.value)


def test_pool_routes_around_a_failing_endpoint(urls):
    async def go():
        pool = EndpointPool([endpoint(urls["broken"], "broken"), endpoint(urls["healthy"], "healthy")])
        async with ChatClient(pool, None, concurrency=4, max_attempts=4, backoff=0.01) as client:
            results = await asyncio.gather(*(client.complete(body(100 + i)) for i in range(40)))
        return results, pool
    before = get_stats(urls["broken"], with_keys=False)["requests"]
    results, pool = run(go())
    assert all(r.ok for r in results)
    sent_to_broken = get_stats(urls["broken"], with_keys=False)["requests"] - before
    # It stopped getting requests after a few failures in a row (with no slow start against a
    # server that meters nothing, the run ends before the 2 s after which it would be paused).
    assert sent_to_broken < 20
    assert pool.states[0].failures_in_a_row >= 3 and pool.states[1].failures_in_a_row == 0


def test_bad_credentials_stop_the_run_and_name_the_endpoint(urls):
    async def go():
        pool = EndpointPool([Endpoint("locked-one", "openai", f"{urls['locked']}/v1", "m", key_env="MY_KEY",
                                      api_key="wrong-secret-value")])
        async with ChatClient(pool, None) as client:
            await client.complete(body(3))
    with pytest.raises(FatalEndpointError) as caught:
        run(go())
    assert "locked-one" in str(caught.value) and "MY_KEY" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)


def test_budget_keeps_requests_under_the_limit(urls):
    async def go():
        pool = EndpointPool([endpoint(urls["limited"], "limited", rpm=6, window_seconds=1)])
        async with ChatClient(pool, None, concurrency=8) as client:
            await asyncio.sleep(1.1)  # let the server's bucket refill after the previous test
            await asyncio.gather(*(client.complete(body(200 + i)) for i in range(18)))
        return client.stats
    # Without a budget most of these would be refused (see the first test); with it, at most the one
    # that meets a connection-timing skew right after the opening burst.
    stats = run(go())
    assert stats.rate_limited <= 1 and stats.sent - stats.rate_limited == 18


def test_a_remote_server_is_reached_through_the_configured_proxy(urls, monkeypatch):
    # `remote.invalid` never resolves: only a proxy (here the emulator, which answers absolute-form
    # requests) can carry the request, and the proxy is worked out once, not per request.
    monkeypatch.setenv("HTTP_PROXY", urls["healthy"])
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    before = get_stats(urls["healthy"])["requests"]

    async def go():
        pool = EndpointPool([Endpoint("remote", "local", "http://remote.invalid/v1", "m", api_key="k")])
        async with ChatClient(pool, None, max_attempts=1) as client:
            return [await client.complete(body(310 + i)) for i in range(2)]
    assert all(result.ok for result in run(go()))
    assert get_stats(urls["healthy"])["requests"] == before + 2


def test_a_configured_proxy_is_not_used_for_loopback_servers(urls, monkeypatch):
    # Nothing listens on port 9: a request that went through this proxy would fail.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    async def go():
        pool = EndpointPool([endpoint(urls["healthy"], "healthy")])
        async with ChatClient(pool, None, max_attempts=1) as client:
            return await client.complete(body(300))
    assert run(go()).ok


# Endpoints files and replies -----------------------------------------------------------------

def test_endpoint_file_errors_name_the_file(tmp_path, monkeypatch):
    path = tmp_path / "e.toml"
    path.write_text('[[endpoint]]\nname="a"\nkind="azure"\nbase_url="https://x"\ndeployment="d"\nkey_env="K1"\n')
    [endpoint] = load_endpoints_toml(path)
    monkeypatch.delenv("K1", raising=False)
    with pytest.raises(EndpointConfigError, match="K1 is not set"):
        resolve_key(endpoint)
    monkeypatch.setenv("K1", "secret-value-123")
    assert "secret-value-123" not in repr(resolve_key(endpoint))
    path.write_text('[[endpoint]]\nkind="bogus"\nbase_url="https://x"\n')
    with pytest.raises(EndpointConfigError, match="e.toml endpoint 1"):
        load_endpoints_toml(path)


def test_a_reply_with_n_choices_is_judged_choice_by_choice():
    reply = {"model": "m", "choices": [
        {"index": 0, "message": {"content": "fine"}, "finish_reason": "stop"},
        {"index": 1, "message": {"content": "cut"}, "finish_reason": "length"},
        {"index": 2, "message": {"content": None}, "finish_reason": "content_filter"}]}
    parts = result_from_response(reply, per_choice=True).split(4)
    # issue 15: an answer cut off at the budget is still an answer, kept with its finish reason
    assert [p.ok for p in parts] == [True, True, False, False]
    assert [p.reason for p in parts] == [None, None, "content_filter", "n_ignored"]
    assert parts[1].text == "cut" and parts[1].finish_reasons == ["length"]
    refused = result_from_response({"choices": [{"index": 0, "finish_reason": "content_filter", "message": {}}]},
                                   per_choice=True)
    assert [p.reason for p in refused.split(2)] == ["content_filter", "content_filter"]
