"""Bearer tokens -> tenants.

Only SHA-256 digests of tokens are kept (and passed to the gateway's replica): a token
never reaches Ray's metadata, a log or an error message. Lookups are by digest, so the
time a lookup takes says nothing about how much of a guessed token was right.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alora_serve.engine.types import DEFAULT_TENANT


class AuthenticationError(Exception):
    """No valid bearer token (UNAUTHENTICATED)."""


class PermissionDeniedError(Exception):
    """The token's tenant may not call this intrinsic (PERMISSION_DENIED)."""


@dataclass(frozen=True)
class Principal:
    tenant: str
    intrinsics: frozenset[str] | None  # None: every intrinsic

    def may_call(self, intrinsic: str) -> bool:
        return self.intrinsics is None or intrinsic in self.intrinsics

    def authorize(self, intrinsics: Iterable[str]) -> None:
        if denied := sorted(name for name in set(intrinsics) if not self.may_call(name)):
            raise PermissionDeniedError(
                f"tenant {self.tenant!r} may not call {denied}; it may call "
                f"{sorted(self.intrinsics or ())}"
            )


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(default=None, min_length=16, repr=False)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    tenant: str = Field(min_length=1, max_length=128)
    intrinsics: list[str] | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> TokenEntry:
        if (self.token is None) == (self.sha256 is None):
            raise ValueError(f"tenant {self.tenant!r}: give exactly one of token or sha256")
        return self

    def digest(self) -> str:
        return self.sha256 or token_digest(self.token or "")


class TokensFile(BaseModel):
    # Validation errors must not quote a token.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    tokens: list[TokenEntry] = Field(min_length=1)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenTable:
    """Who each bearer token is. Without tokens, every call is the anonymous tenant."""

    def __init__(self, principals: dict[str, Principal] | None = None) -> None:
        self._by_digest = principals or {}

    @classmethod
    def load(cls, path: Path | None) -> TokenTable:
        """Raises pydantic's ValidationError (naming the entry) on a malformed file."""
        if path is None:
            return cls()
        parsed = TokensFile.model_validate(_read_yaml(Path(path)))
        table: dict[str, Principal] = {}
        for entry in parsed.tokens:
            digest = entry.digest()
            if digest in table:
                raise ValueError(f"{path}: a token is listed twice (tenant {entry.tenant!r})")
            allowed = None if entry.intrinsics is None else frozenset(entry.intrinsics)
            table[digest] = Principal(entry.tenant, allowed)
        return cls(table)

    @property
    def required(self) -> bool:
        return bool(self._by_digest)

    def authenticate(self, authorization: Sequence[str]) -> Principal:
        """``authorization``: the call's ``authorization`` metadata values."""
        if not self.required:
            return Principal(DEFAULT_TENANT, None)
        if len(authorization) != 1:
            raise AuthenticationError(
                "send exactly one 'authorization: Bearer <token>' metadata entry"
            )
        scheme, _, token = authorization[0].partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("the authorization metadata must be 'Bearer <token>'")
        principal = self._by_digest.get(token_digest(token.strip()))
        if principal is None:
            raise AuthenticationError("the bearer token is not valid")
        return principal


def _read_yaml(path: Path) -> object:
    """The file's YAML; a syntax error names the place, not the text (a token)."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path}: not valid YAML{where}") from None
