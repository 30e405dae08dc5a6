"""Idempotency-Key: a retried POST returns the first answer and appends nothing."""

from __future__ import annotations

import asyncio

from tests.support import Api, assert_problem, paragraph


async def test_retry_with_same_key_and_body_returns_first_answer(api: Api) -> None:
    await api.open()
    first = await api.publish(body=paragraph("once"), headers={"Idempotency-Key": "publish-1"})
    count = await api.event_count()
    retry = await api.publish(body=paragraph("once"), headers={"Idempotency-Key": "publish-1"})
    assert retry.status_code == 201
    assert retry.content == first.content
    assert retry.headers["location"] == first.headers["location"]
    assert await api.event_count() == count


async def test_same_key_with_another_body_is_422(api: Api) -> None:
    await api.open()
    await api.publish(body=paragraph("once"), headers={"Idempotency-Key": "k"})
    count = await api.event_count()
    assert_problem(await api.publish(body=paragraph("different"), headers={"Idempotency-Key": "k"}), 422)
    assert await api.event_count() == count


async def test_keys_apply_to_every_post_route(api: Api) -> None:
    key = {"Idempotency-Key": "open-kherson"}
    first = await api.client.post("/v1/coverages", json={"id": "kherson", "title": "K"}, headers=api.auth(**key))
    again = await api.client.post("/v1/coverages", json={"id": "kherson", "title": "K"}, headers=api.auth(**key))
    assert first.status_code == again.status_code == 201 and first.content == again.content
    end = {"Idempotency-Key": "end-kherson"}
    assert (await api.client.post("/v1/coverages/kherson/end", headers=api.auth(**end))).status_code == 200
    assert (await api.client.post("/v1/coverages/kherson/end", headers=api.auth(**end))).status_code == 200
    assert await api.event_count() == 2
    assert_problem(await api.publish(headers={"Idempotency-Key": "bad key with spaces"}), 400)


async def test_identical_requests_at_the_same_instant_append_one_event(api: Api) -> None:
    await api.open()
    count = await api.event_count()
    responses = await asyncio.gather(
        *(api.publish(body=paragraph("breaking"), headers={"Idempotency-Key": "same-instant"}) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await api.event_count() == count + 1
