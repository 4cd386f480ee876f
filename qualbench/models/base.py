"""The model contract: the base class every backend subclasses (as lm-eval's ``LM``), and ``ModelError``.

The runner (:mod:`qualbench.evaluation`) talks to a backend only through the members below; each optional hook
has a default here, so the runner calls them unconditionally and never probes with ``hasattr``.

==========================  ================================================================================
member                      contract (default)
==========================  ================================================================================
``name: str``               label in logs, metrics.json and reports (default: the class name)
``generate(requests)``      **required**: one :class:`Response` per :class:`Request`, in order. An item the
                            backend cannot run gives ``Response(text="", skipped=reason)``. A failure the run
                            cannot recover from raises :class:`ModelError`; one with ``.responses`` (a list in
                            request order, None where not finished) has the finished ones written first.
                            ``Response.answer`` is for backends that decide a canonical answer themselves
                            (log-likelihood, the retrieval answerer, random): the runner then scores it
                            (:func:`qualbench.answers.canonical_answer`) instead of extracting from ``text``.
``prepare(items)``          called once with the whole evaluated file before the first request (also on
                            resume, so cross-fitted folds are the same). Default: nothing.
``needs_retriever: bool``   True: the runner builds ``cfg.retriever`` and calls ``attach_retriever`` before
                            ``prepare``. Read from the class before the model is built. Default False.
``attach_retriever(r)``     receives the retriever. Default: stores it as ``self.retriever``.
``streams`` (read-only)     True when the subclass overrides ``generate_stream``; the runner then hands it
                            the whole run instead of calling ``generate`` batch by batch.
``generate_stream(requests, on_result)``
                            for backends that keep their own pool of requests in flight: pull ``requests``
                            (an iterator, rendered lazily) and call ``on_result(request, response)`` as each
                            completes; return how many completed; raise :class:`ModelError` after handing
                            over every completed one. Default: not supported (``streams`` is False).
``uses_eval_labels: bool``  True when predictions depend on the evaluated items' labels (written to
                            metrics.json and the leaderboard). Default False.
``max_empty_share``         ``float | None``: API backends set the share of empty completions above which the
                            run warns (a server problem, counted in metrics.json). Default None: not checked.
``run_report()``            extra entries for metrics.json after the run (replay: missing/unknown idx).
                            Default ``{}``.
``close()``                 release resources (pools, processes); the runner calls it when the run ends,
                            also after a failure. Default: nothing.
==========================  ================================================================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from qualbench.errors import QualBenchError
from qualbench.records import Question, Request, Response

__all__ = ["Model", "ModelError"]


class Model(ABC):
    """Base class of every model backend; see the module docstring for each hook and its default."""

    needs_retriever: bool = False
    uses_eval_labels: bool = False
    max_empty_share: float | None = None
    retriever: Any = None

    @property
    def name(self) -> str:
        return self.__dict__.get("name") or type(self).__name__

    @name.setter
    def name(self, value: str) -> None:
        self.__dict__["name"] = value

    @abstractmethod
    def generate(self, requests: list[Request]) -> list[Response]:
        """One Response per Request, in order."""

    def prepare(self, items: Sequence[Question]) -> None:
        """See the whole evaluated file once, before the first request. Default: nothing."""

    def attach_retriever(self, retriever: Any) -> None:
        """Receive the retriever built from ``cfg.retriever`` (only when ``needs_retriever``)."""
        self.retriever = retriever

    @property
    def streams(self) -> bool:
        """Whether this backend implements ``generate_stream`` (keeps its own pool for the whole run)."""
        return type(self).generate_stream is not Model.generate_stream

    def generate_stream(self, requests: Iterable[Request], on_result: Callable[[Request, Response], None]) -> int:
        """Run every request, calling ``on_result`` as each completes; return how many completed."""
        raise NotImplementedError(f"{type(self).__name__} does not stream; call generate()")

    def run_report(self) -> dict[str, Any]:
        """Extra entries for metrics.json after the run. Default: none."""
        return {}

    def close(self) -> None:
        """Release resources. Default: nothing."""

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ModelError(QualBenchError):
    """A backend failed in a way the run cannot recover from (server down after retries, ...)."""
