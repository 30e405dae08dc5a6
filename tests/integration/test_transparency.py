"""The transparency log over HTTP: every checkpoint verifies with the published key, its root is the RFC 6962
root of the coverage's events as the auditors' feed shows them (recomputed here, not taken from the service),
and every inclusion and consistency proof verifies against the checkpoints."""

from __future__ import annotations

import base64

from service.domain.chain import leaf
from service.domain.merkle import Tree, verify_consistency, verify_inclusion
from service.domain.note import Checkpoint, Verifier, open_note
from tests.integration.test_audit import bearer
from tests.support import Api, assert_problem, paragraph


async def test_checkpoints_and_proofs_verify_against_the_log_as_auditors_read_it(api: Api, auditor_token: str) -> None:
    await api.open()
    for n in range(6):
        post = (await api.publish(body=paragraph(f"update {n}"))).json()
        if n % 2:
            await api.edit(post["id"], title=f"edited {n}")
    key = await api.client.get("/v1/log-key")
    assert key.status_code == 200 and key.headers["content-type"].startswith("text/plain")
    verifier = Verifier.parse(key.text)

    feed = (await api.client.get("/v1/events", params={"coverage_id": "kherson", "limit": 1000},
                                 headers=bearer(auditor_token))).json()  # fmt: skip
    hashes = [entry["event"]["hash"] for entry in sorted(feed["events"], key=lambda e: e["event"]["version"])]
    ours = Tree()
    for hash_ in hashes:
        ours.append(leaf(hash_))

    timeline = (await api.client.get("/v1/coverages/kherson/timeline")).json()
    size = timeline["coverage"]["version"]
    assert size == len(hashes) == 10
    signed = await api.client.get(timeline["coverage"]["checkpoint"])
    assert signed.status_code == 200
    checkpoint = Checkpoint.parse(open_note(signed.text, verifier))
    assert checkpoint == Checkpoint(f"{verifier.name}/kherson", size, ours.root(size))

    roots = {}
    for old in range(1, size + 1):
        note = (await api.client.get("/v1/coverages/kherson/checkpoint", params={"size": old})).text
        roots[old] = Checkpoint.parse(open_note(note, verifier)).root
        assert roots[old] == ours.root(old)
    for version in range(1, size + 1):
        proof = (await api.client.get("/v1/coverages/kherson/proofs/inclusion", params={"version": version})).json()
        assert proof["event_hash"] == hashes[version - 1] and proof["tree_size"] == size
        path = [base64.b64decode(h) for h in proof["hashes"]]
        assert verify_inclusion(leaf(proof["event_hash"]), version - 1, size, path, roots[size])
        assert open_note(proof["checkpoint"], verifier) == signed.text.split("\n\n")[0] + "\n"
    for old in range(1, size + 1):
        for new in range(old, size + 1):
            proof = (await api.client.get("/v1/coverages/kherson/proofs/consistency",
                                          params={"old": old, "new": new})).json()  # fmt: skip
            path = [base64.b64decode(h) for h in proof["hashes"]]
            assert verify_consistency(old, new, roots[old], roots[new], path), (old, new)


async def test_sizes_beyond_the_log_and_unknown_coverages_are_problems(api: Api) -> None:
    await api.open()
    await api.publish()
    for url, params, status in (
        ("/v1/coverages/kherson/checkpoint", {"size": 3}, 404),
        ("/v1/coverages/kherson/checkpoint", {"size": 0}, 400),
        ("/v1/coverages/kherson/checkpoint", {"size": "x"}, 400),
        ("/v1/coverages/kherson/checkpoint", {"size": "null"}, 400),  # not absent: the document says an integer
        ("/v1/coverages/nowhere/checkpoint", {"size": "null"}, 400),  # refused before the database is asked
        ("/v1/coverages/kherson/proofs/inclusion", {"version": 1, "size": "null"}, 400),
        ("/v1/coverages/kherson/proofs/consistency", {"old": 1, "new": "null"}, 400),
        ("/v1/coverages/kherson/proofs/inclusion", {"version": 3}, 404),
        ("/v1/coverages/kherson/proofs/inclusion", {"version": 1, "size": 9}, 404),
        ("/v1/coverages/kherson/proofs/inclusion", {}, 400),
        ("/v1/coverages/kherson/proofs/consistency", {"old": 2, "new": 1}, 404),
        ("/v1/coverages/nowhere/checkpoint", {}, 404),
        ("/v1/coverages/nowhere/proofs/consistency", {"old": 1}, 404),
    ):
        assert_problem(await api.client.get(url, params=params), status)
