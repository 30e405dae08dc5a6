"""The fold and the command checks, with plain lists of events: no database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from service.domain import commands
from service.domain.blocks import Paragraph
from service.domain.errors import (
    CoverageAlreadyEnded,
    CoverageAlreadyExists,
    CoverageNotFound,
    CoverageStillLive,
    NothingToChange,
    PostAlreadyRetracted,
    PostNotFound,
    RevisionMismatch,
    UnsafeMarkup,
)
from service.domain.events import (
    AnyEvent,
    CoverageEnded,
    CoverageOpened,
    Metadata,
    PostEdited,
    PostPinned,
    PostPublished,
    PostRetracted,
    PostUnpinned,
    RecordedEvent,
    event_type,
)
from service.domain.state import PostState, Timeline, fold, post_history, replay

T0 = datetime(2022, 11, 10, 9, 0, tzinfo=UTC)
P1, P2 = "01890a5d-ac96-774b-bcce-b302099a8057", "01890a5d-ac96-774b-bcce-b302099a8058"


def log(*changes: tuple[str | None, AnyEvent]) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            position=i,
            coverage_id="kherson",
            version=i,
            post_id=post_id,
            type=event_type(data),
            schema_version=1,
            data=data,
            metadata=Metadata(actor="cms"),
            recorded_at=T0 + timedelta(minutes=i),
            prev_hash="",
            hash="",
        )
        for i, (post_id, data) in enumerate(changes, start=1)
    ]


def para(text: str) -> list[Paragraph]:
    return [Paragraph(text=text)]


OPEN = (None, CoverageOpened(title="Kherson", editors=["Jeremy Gahagan"], timezone="Europe/London"))


def test_publish_edit_pin_retract_fold_into_the_timeline() -> None:
    timeline = replay(
        log(
            OPEN,
            (P1, PostPublished(body=para("one"))),
            (P2, PostPublished(body=para("two"), title="Two")),
            (P1, PostEdited(title="One", note="title added")),
            (P1, PostPinned()),
            (P2, PostPinned()),
            (P2, PostRetracted(reason="wrong")),
        )
    )
    coverage = timeline.coverage
    assert coverage is not None
    assert coverage.version == 7 and coverage.post_count == 1 and coverage.pinned_post_id is None
    one, two = timeline.posts[P1], timeline.posts[P2]
    assert (one.title, one.revision, one.sequence) == ("One", 2, 2)
    assert one.updated_at == T0 + timedelta(minutes=4) and one.published_at == T0 + timedelta(minutes=2)
    assert two.retracted and two.retraction_reason == "wrong" and two.revision == 1


def test_ending_and_reopening_change_status() -> None:
    ended = replay(log(OPEN, (None, CoverageEnded())))
    assert ended.coverage is not None and ended.coverage.status == "ended" and ended.coverage.ended_at


def test_events_before_opening_are_rejected() -> None:
    with pytest.raises(ValueError, match="precedes"):
        replay(log((P1, PostPublished(body=para("x")))))


def state() -> Timeline:
    return replay(log(OPEN, (P1, PostPublished(body=para("one")))))


def test_command_checks_refuse_what_the_rules_forbid() -> None:
    timeline = state()
    coverage, post = timeline.coverage, timeline.posts[P1]
    with pytest.raises(CoverageAlreadyExists):
        commands.decide_open(coverage, commands.OpenCoverage(id="kherson", title="again"))
    with pytest.raises(CoverageNotFound):
        commands.decide_publish(None, "ghost", commands.PublishPost(body=para("x")))
    with pytest.raises(PostNotFound):
        commands.decide_edit(coverage, None, "kherson", P2, commands.EditPost(title="x"), None)
    with pytest.raises(RevisionMismatch):
        commands.decide_edit(coverage, post, "kherson", P1, commands.EditPost(title="x"), 7)
    with pytest.raises(NothingToChange):
        commands.decide_edit(coverage, post, "kherson", P1, commands.EditPost(note="n"), None)
    with pytest.raises(CoverageStillLive):
        commands.decide_reopen(coverage, "kherson")
    with pytest.raises(UnsafeMarkup):
        commands.decide_publish(coverage, "kherson", commands.PublishPost(body=para("<script>x</script>")))


def test_ended_coverage_and_retracted_post_refuse_changes() -> None:
    timeline = replay(log(OPEN, (P1, PostPublished(body=para("one"))), (None, CoverageEnded())))
    with pytest.raises(CoverageAlreadyEnded):
        commands.decide_publish(timeline.coverage, "kherson", commands.PublishPost(body=para("x")))
    retracted = replay(log(OPEN, (P1, PostPublished(body=para("one"))), (P1, PostRetracted(reason="r"))))
    with pytest.raises(PostAlreadyRetracted):
        commands.decide_pin(retracted.coverage, retracted.posts[P1], "kherson", P1)


def test_pinning_the_pinned_post_and_unpinning_nothing_decide_no_events() -> None:
    pinned = replay(log(OPEN, (P1, PostPublished(body=para("one"))), (P1, PostPinned())))
    assert commands.decide_pin(pinned.coverage, pinned.posts[P1], "kherson", P1) == []
    assert commands.decide_unpin(state().coverage, "kherson") == []


def test_publish_sanitises_text_to_the_allowlist() -> None:
    event = commands.decide_publish(
        state().coverage, "kherson", commands.PublishPost(body=para("<p>AT&T <em>said</em></p>"), title="<i>T</i>")
    )
    assert event.body[0] == Paragraph(text="AT&amp;T <em>said</em>")
    assert event.title == "<i>T</i>"


@pytest.mark.parametrize("seed", range(25))
def test_a_posts_own_events_give_the_history_a_whole_coverage_replay_gives(seed: int) -> None:
    rng = random.Random(seed)
    ids = [f"01890a5d-ac96-774b-bcce-b302099a80{n:02d}" for n in range(5)]
    changes: list[tuple[str | None, AnyEvent]] = [OPEN]
    published: list[str] = []
    retracted: set[str] = set()
    pinned: str | None = None
    for _ in range(60):
        live = [p for p in published if p not in retracted]
        action = rng.choice(["publish", "edit", "pin", "pin", "unpin", "retract"])
        if action == "publish" and len(published) < len(ids):
            published.append(ids[len(published)])
            changes.append((published[-1], PostPublished(body=para("p"))))
        elif action == "edit" and live:
            changes.append((rng.choice(live), PostEdited(title=f"t{rng.random()}")))
        elif action == "pin" and live:
            pinned = rng.choice(live)
            changes.append((pinned, PostPinned()))
        elif action == "unpin" and pinned is not None:
            changes.append((pinned, PostUnpinned()))
            pinned = None
        elif action == "retract" and len(live) > 1:
            gone = rng.choice(live)
            retracted.add(gone)
            pinned = None if pinned == gone else pinned
            changes.append((gone, PostRetracted(reason="r")))
    stream = log(*changes)
    expected: dict[str, list[tuple[int, PostState, bool]]] = {}
    timeline = Timeline()
    for event in stream:
        fold(timeline, event)
        if event.post_id is not None:
            assert timeline.coverage is not None
            state = timeline.posts[event.post_id]
            expected.setdefault(event.post_id, []).append(
                (event.version, state, timeline.coverage.pinned_post_id == event.post_id)
            )
    pins = [e.version for e in stream if isinstance(e.data, PostPinned)]
    base = timeline.coverage
    assert base is not None
    for post_id, steps in expected.items():
        own = [e for e in stream if e.post_id == post_id]
        with_next_pin = [
            (e, min((v for v in pins if v > e.version), default=None) if isinstance(e.data, PostPinned) else None)
            for e in own
        ]
        got = [(event.version, state, was_pinned) for event, state, was_pinned in post_history(base, with_next_pin)]
        assert got == steps, post_id
