"""A witness of the coverages' transparency logs: it keeps the newest checkpoint it has seen of each, and on
every run checks that the service's logs still extend them (c2sp.org/tlog-checkpoint; RFC 6962 proofs).

What it catches, naming coverage and size: a log that shrank (newest events deleted), a log whose past was
rewritten (the consistency proof fails), and a fork (a second signed checkpoint for a size it holds, with another
root). Against an export (`liveline export`), it recomputes every coverage's tree from the file itself (after
checking the hash chains) and compares the roots of the sizes it witnessed; no key or proof is needed there.

The state is a JSON file the witness alone writes; the service's verifier key is pinned in it on first use
(or given with --key). Only a run with no finding moves the witnessed checkpoints forward.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import msgspec

from service.domain.chain import ChainChecker, LoggedEvent, leaf
from service.domain.merkle import Tree, verify_consistency
from service.domain.note import Checkpoint, NoteError, Verifier, open_note


class Witnessed(msgspec.Struct, frozen=True):
    size: int
    root: str
    """base64, as in the checkpoint"""
    note: str
    """The signed checkpoint, kept whole: the evidence if the log later forks."""


class State(msgspec.Struct):
    key: str | None = None
    logs: dict[str, Witnessed] = {}
    """origin (`<log name>/<coverage>`) -> the newest checkpoint seen"""

    @classmethod
    def load(cls, path: Path) -> State:
        return msgspec.json.decode(path.read_bytes(), type=cls) if path.exists() else cls()

    def save(self, path: Path) -> None:
        draft = path.with_name(path.name + ".new")
        draft.write_bytes(msgspec.json.format(msgspec.json.encode(self), indent=2) + b"\n")
        draft.replace(path)


class Finding(msgspec.Struct, frozen=True):
    coverage_id: str
    size: int
    problem: str

    def __str__(self) -> str:
        return f"{self.coverage_id} at size {self.size}: {self.problem}"


class Unreachable(Exception):
    pass


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 (the operator's own URL)
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise Unreachable(f"{url}: {exc}") from exc


class ServiceWitness:
    def __init__(self, base_url: str, state: State, key: str | None) -> None:
        self.base = base_url.rstrip("/")
        self.state = state
        self.pinned_now = False
        served = self._text("/v1/log-key").strip()
        trusted = key or state.key
        if trusted is None:
            trusted, self.pinned_now = served, True
        self.verifier = Verifier.parse(trusted)
        self.key_changed = served != self.verifier.text()
        state.key = self.verifier.text()
        self.extra: list[tuple[str, Witnessed]] = []
        """Checkpoints from files (`adopt`), checked beside the state's."""

    def _text(self, path: str, **params: int) -> str:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = _get(f"{self.base}{path}{query}")
        if status != 200:
            raise LookupError(f"{path}{query}: HTTP {status} {body[:200]!r}")
        return body.decode()

    def coverages(self) -> list[str]:
        found, before = [], None
        while True:
            page = json.loads(self._text("/v1/coverages", limit=100) if before is None else self._page(before))
            found += [coverage["id"] for coverage in page["coverages"]]
            before = page.get("next")
            if not before:
                return found

    def _page(self, before: str) -> str:
        return self._text(f"/v1/coverages?limit=100&before={urllib.parse.quote(before)}")

    def _checkpoint(self, coverage_id: str, size: int | None = None) -> tuple[Checkpoint, str]:
        path = f"/v1/coverages/{urllib.parse.quote(coverage_id)}/checkpoint"
        note = self._text(path, size=size) if size is not None else self._text(path)
        checkpoint = Checkpoint.parse(open_note(note, self.verifier))
        origin = f"{self.verifier.name}/{coverage_id}"
        if checkpoint.origin != origin:
            raise NoteError(f"a checkpoint of {checkpoint.origin!r} where {origin!r} was asked for")
        return checkpoint, note

    def adopt(self, note: str) -> str:
        """A signed checkpoint kept elsewhere (a reader's `coverage.checkpoint`, another witness's): checked now
        like one this witness saw, and remembered if it is newer. Returns its coverage."""
        checkpoint = Checkpoint.parse(open_note(note, self.verifier))
        prefix = f"{self.verifier.name}/"
        if not checkpoint.origin.startswith(prefix):
            raise NoteError(f"a checkpoint of another log: {checkpoint.origin!r}")
        coverage_id = checkpoint.origin[len(prefix) :]
        seen = Witnessed(checkpoint.size, base64.b64encode(checkpoint.root).decode(), note)
        self.extra.append((coverage_id, seen))
        return coverage_id

    def check(self, coverage_id: str, before: Witnessed | None = None, remember: bool = True) -> Finding | None:
        """Check one coverage against what was witnessed (or `before`), and remember its newest checkpoint if all
        is well."""
        origin = f"{self.verifier.name}/{coverage_id}"
        before = before or self.state.logs.get(origin)
        try:
            now, note = self._checkpoint(coverage_id)
        except (LookupError, NoteError) as exc:
            return Finding(coverage_id, before.size if before else 0, f"no valid checkpoint: {exc}")
        if before is not None:
            old_root = base64.b64decode(before.root)
            if now.size < before.size:
                return Finding(coverage_id, before.size, f"the log shrank to {now.size} events: events were removed")
            try:
                then, then_note = self._checkpoint(coverage_id, before.size)
            except (LookupError, NoteError) as exc:
                return Finding(coverage_id, before.size, f"no valid checkpoint of the witnessed size: {exc}")
            if then.root != old_root:
                return Finding(
                    coverage_id,
                    before.size,
                    "fork: the service now signs another root for a size already witnessed; both signed notes:\n"
                    f"{before.note}\n{then_note}",
                )
            if now.size > before.size:
                proof = json.loads(
                    self._text(
                        f"/v1/coverages/{urllib.parse.quote(coverage_id)}/proofs/consistency",
                        old=before.size,
                        new=now.size,
                    )
                )
                hashes = [base64.b64decode(h) for h in proof["hashes"]]
                if not verify_consistency(before.size, now.size, old_root, now.root, hashes):
                    return Finding(coverage_id, before.size, f"size {now.size} does not extend the witnessed log")
        if remember:
            self.state.logs[origin] = Witnessed(now.size, base64.b64encode(now.root).decode(), note)
        return None

    def run(self, only: Iterable[str] = ()) -> list[Finding]:
        prefix = f"{self.verifier.name}/"
        witnessed = [origin[len(prefix) :] for origin in self.state.logs if origin.startswith(prefix)]
        chosen = list(only) or sorted({*self.coverages(), *witnessed})
        findings = [f for coverage_id, seen in self.extra if (f := self.check(coverage_id, seen, False)) is not None]
        return findings + [finding for coverage_id in chosen if (finding := self.check(coverage_id)) is not None]


def check_export(lines: Iterable[bytes], state: State) -> tuple[list[Finding], int]:
    """Compare an export with the witnessed checkpoints: (findings, coverages compared)."""
    decoder = msgspec.json.Decoder(LoggedEvent)
    events = sorted((decoder.decode(line) for line in lines if line.strip()), key=lambda e: (e.coverage_id, e.version))
    checker = ChainChecker()
    trees: dict[str, Tree] = {}
    broken: dict[str, Finding] = {}
    for event in events:
        if event.coverage_id in broken:
            continue
        failure = checker.check(event)
        if failure is not None:
            broken[event.coverage_id] = Finding(
                event.coverage_id, event.version, f"the export's chain: {failure.reason}"
            )
            continue
        trees.setdefault(event.coverage_id, Tree()).append(leaf(event.hash))
    unredacted = checker.finish()
    if unredacted is not None:
        broken.setdefault(
            unredacted.coverage_id, Finding(unredacted.coverage_id, unredacted.version, unredacted.reason)
        )
    findings: list[Finding] = []
    compared = 0
    for origin, seen in sorted(state.logs.items()):
        coverage_id = origin.rpartition("/")[2]
        compared += 1
        if coverage_id in broken:
            findings.append(broken[coverage_id])
            continue
        tree = trees.get(coverage_id, Tree())
        if tree.size < seen.size:
            findings.append(
                Finding(coverage_id, seen.size, f"the export holds {tree.size} events: events were removed")
            )
        elif tree.root(seen.size) != base64.b64decode(seen.root):
            findings.append(
                Finding(coverage_id, seen.size, "the export's log differs from the witnessed one: rewritten")
            )
    return findings, compared
