from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from alora_serve.engine.types import DEFAULT_TENANT
from alora_serve.gateway.auth import (
    AuthenticationError,
    PermissionDeniedError,
    Principal,
    TokenEntry,
    TokenTable,
    token_digest,
)

ACME_TOKEN = "acme-secret-token-0123456789"
GLOBEX_TOKEN = "globex-secret-token-9876543210"


def write_tokens(tmp_path: Path, entries: list[dict]) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump({"tokens": entries}, sort_keys=False))
    return path


@pytest.fixture
def table(tmp_path: Path) -> TokenTable:
    return TokenTable.load(
        write_tokens(
            tmp_path,
            [
                {"token": ACME_TOKEN, "tenant": "acme", "intrinsics": ["answerability"]},
                {"sha256": token_digest(GLOBEX_TOKEN), "tenant": "globex"},
            ],
        )
    )


def test_plain_and_digest_entries_both_authenticate(table: TokenTable) -> None:
    assert table.required
    acme = table.authenticate([f"Bearer {ACME_TOKEN}"])
    assert acme == Principal("acme", frozenset({"answerability"}))
    globex = table.authenticate([f"Bearer {GLOBEX_TOKEN}"])
    assert globex == Principal("globex", None)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_scheme_is_case_insensitive(table: TokenTable, scheme: str) -> None:
    assert table.authenticate([f"{scheme} {ACME_TOKEN}"]).tenant == "acme"


@pytest.mark.parametrize(
    ("authorization", "match"),
    [
        ([], "exactly one"),
        ([f"Bearer {ACME_TOKEN}", f"Bearer {GLOBEX_TOKEN}"], "exactly one"),
        ([f"Basic {ACME_TOKEN}"], "Bearer <token>"),
        ([ACME_TOKEN], "Bearer <token>"),
        (["Bearer "], "Bearer <token>"),
        (["Bearer not-a-known-token-at-all"], "not valid"),
        ([f"Bearer {ACME_TOKEN}x"], "not valid"),
    ],
)
def test_bad_authorization_is_unauthenticated(
    table: TokenTable, authorization: list[str], match: str
) -> None:
    with pytest.raises(AuthenticationError, match=match) as caught:
        table.authenticate(authorization)
    assert ACME_TOKEN not in str(caught.value)
    assert GLOBEX_TOKEN not in str(caught.value)


def test_without_tokens_every_call_is_the_anonymous_tenant() -> None:
    for table in (TokenTable(), TokenTable.load(None)):
        assert not table.required
        for authorization in ([], ["garbage"], [f"Bearer {ACME_TOKEN}"]):
            principal = table.authenticate(authorization)
            assert principal == Principal(DEFAULT_TENANT, None)
    assert DEFAULT_TENANT == "default"


def test_a_token_listed_twice_is_refused(tmp_path: Path) -> None:
    path = write_tokens(
        tmp_path,
        [
            {"token": ACME_TOKEN, "tenant": "acme"},
            {"sha256": token_digest(ACME_TOKEN), "tenant": "impostor"},
        ],
    )
    with pytest.raises(ValueError, match="listed twice") as caught:
        TokenTable.load(path)
    assert "impostor" in str(caught.value)
    assert ACME_TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "entry",
    [
        {"token": ACME_TOKEN, "sha256": token_digest(ACME_TOKEN), "tenant": "acme"},
        {"tenant": "acme"},
    ],
    ids=["both", "neither"],
)
def test_an_entry_needs_exactly_one_secret_naming_its_tenant(tmp_path: Path, entry) -> None:
    with pytest.raises(
        ValidationError, match=r"tenant 'acme': give exactly one of token or sha256"
    ):
        TokenTable.load(write_tokens(tmp_path, [entry]))


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ({"token": "short-token", "tenant": "acme"}, "token"),
        ({"sha256": "ABC", "tenant": "acme"}, "sha256"),
        ({"sha256": token_digest(ACME_TOKEN).upper(), "tenant": "acme"}, "sha256"),
        ({"sha256": token_digest(ACME_TOKEN), "tenant": ""}, "tenant"),
        ({"sha256": token_digest(ACME_TOKEN), "tenant": "acme", "extra": 1}, "extra"),
    ],
)
def test_malformed_entries_are_refused_naming_the_field(
    tmp_path: Path, entry: dict, where: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        TokenTable.load(write_tokens(tmp_path, [entry]))
    assert any(where in error["loc"] for error in caught.value.errors())


def test_a_file_without_tokens_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="tokens"):
        TokenTable.load(write_tokens(tmp_path, []))


def test_the_token_never_appears_in_reprs(table: TokenTable) -> None:
    entry = TokenEntry(token=ACME_TOKEN, tenant="acme")
    assert ACME_TOKEN not in repr(entry)
    assert ACME_TOKEN not in str(entry)
    assert "acme" in repr(entry)
    assert ACME_TOKEN not in repr(table)
    assert GLOBEX_TOKEN not in repr(table)
    assert ACME_TOKEN not in repr(table.authenticate([f"Bearer {ACME_TOKEN}"]))


@pytest.mark.parametrize(
    "entry",
    [
        {"token": "short-secret", "tenant": "acme"},
        {"token": ACME_TOKEN, "sha256": token_digest(GLOBEX_TOKEN), "tenant": "acme"},
    ],
)
def test_the_token_never_appears_in_load_errors(tmp_path: Path, entry: dict) -> None:
    with pytest.raises(ValidationError) as caught:
        TokenTable.load(write_tokens(tmp_path, [entry]))
    text = str(caught.value)
    assert entry["token"] not in text
    assert entry["token"][:8] not in text


def test_digests_are_sha256_hex() -> None:
    assert token_digest("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_principals_may_call_only_their_intrinsics() -> None:
    everything = Principal("root", None)
    assert everything.may_call("anything")
    everything.authorize(["a", "b"])

    limited = Principal("acme", frozenset({"answerability", "citations"}))
    assert limited.may_call("citations")
    assert not limited.may_call("hallucination_detection")
    limited.authorize(["answerability", "citations", "answerability"])
    limited.authorize([])

    with pytest.raises(PermissionDeniedError) as caught:
        limited.authorize(["query_rewrite", "answerability", "hallucination_detection"])
    message = str(caught.value)
    assert "'acme'" in message
    assert "['hallucination_detection', 'query_rewrite']" in message
    assert "['answerability', 'citations']" in message

    nothing = Principal("locked", frozenset())
    assert not nothing.may_call("answerability")
    with pytest.raises(PermissionDeniedError, match=r"may not call \['answerability'\]"):
        nothing.authorize(["answerability"])
