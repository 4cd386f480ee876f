"""The one interface every model backend implements: a batch of requests in, raw responses out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from qualbench.errors import QualBenchError
from qualbench.records import Request, Response


@runtime_checkable
class Model(Protocol):
    """A model backend. ``generate`` must return one Response per Request, in order."""

    name: str

    def generate(self, requests: list[Request]) -> list[Response]: ...


class ModelError(QualBenchError):
    """A backend failed in a way the run cannot recover from (server down after retries, ...)."""
