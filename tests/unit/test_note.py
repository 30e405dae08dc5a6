"""Signed notes and checkpoints against the examples of the C2SP specifications (c2sp.org/signed-note,
c2sp.org/tlog-checkpoint) and the test vectors of Go's golang.org/x/mod/sumdb/note (note_test.go)."""

from __future__ import annotations

import pytest

from service.domain.note import Checkpoint, NoteError, Signer, Verifier, open_note

# golang.org/x/mod/sumdb/note, note_test.go (TestSign, TestOpen)
PETER_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIGNATURE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIGNATURE = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
# c2sp.org/signed-note, "Example"
C2SP_VERIFIER = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# c2sp.org/tlog-checkpoint, the example's note text
C2SP_CHECKPOINT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_signing_gives_go_s_bytes_exactly() -> None:
    signer = Signer.parse(PETER_SIGNER)
    assert signer.verifier.text() == PETER_VERIFIER
    assert signer.text() == PETER_SIGNER
    assert signer.sign(PETER_TEXT) == PETER_TEXT + "\n" + PETER_SIGNATURE


def test_the_c2sp_example_note_opens_and_a_changed_one_does_not() -> None:
    verifier = Verifier.parse(C2SP_VERIFIER)
    assert open_note(C2SP_NOTE, verifier) == "This is an example message.\n"
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(C2SP_NOTE.replace("example message", "exemplary message"), verifier)


def test_other_signatures_are_ignored_and_a_missing_one_is_refused() -> None:
    verifier = Verifier.parse(PETER_VERIFIER)
    both = PETER_TEXT + "\n" + ENOCH_SIGNATURE + PETER_SIGNATURE
    assert open_note(both, verifier) == PETER_TEXT
    with pytest.raises(NoteError, match="not signed by"):
        open_note(PETER_TEXT + "\n" + ENOCH_SIGNATURE, verifier)


@pytest.mark.parametrize(
    "bad",
    [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # Go: wrong length key
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # Go: unknown algorithm
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # key id does not match
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys_are_refused(bad: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(bad)


def test_a_checkpoint_round_trips_and_signs_as_a_note() -> None:
    checkpoint = Checkpoint.parse(C2SP_CHECKPOINT)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.text() == C2SP_CHECKPOINT
    signer = Signer.generate("example.com/behind-the-sofa")
    note = signer.sign(checkpoint.text())
    assert Checkpoint.parse(open_note(note, signer.verifier)) == checkpoint
    with pytest.raises(NoteError):
        open_note(note.replace("20852163", "20852164"), signer.verifier)
    for bad in ("o\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "o\n1\nshort=\n", "o\n1\n"):
        with pytest.raises(NoteError):
            Checkpoint.parse(bad)
