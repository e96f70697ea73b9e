"""HTTP to one Prometheus: an instant (or range) query in, series or a classified failure out.

Used by `prometheus.py` (and `history.py`'s range query for the ratio points). Every way a query can fail becomes a `QueryFailure` with a distinct
`UnknownReason` (unreachable, timeout, HTTP error, query error, a result that is not an instant
vector), so the caller never sees an exception and never mistakes a failure for 0. Queries are
sent as POST forms so the long regex matchers of grouped queries never hit a URL length limit.
TLS verification is on unless the workload says `insecureSkipVerify`; a CA bundle and a bearer
token come from the WorkloadQuery (the operator resolved them from Secrets).
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

from rwscaler.core.observation import UnknownReason
from rwscaler.http_exchange import Exchanges


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What identifies a Prometheus to talk to: workloads with equal endpoints share queries."""

    url: str
    bearer_token: str | None = None
    ca_pem: str | None = None
    insecure_skip_verify: bool = False

    def __repr__(self) -> str:
        # Never print the token (it ends up in logs and assertion messages otherwise).
        token = "<set>" if self.bearer_token else None
        return f"Endpoint(url={self.url!r}, bearer_token={token}, ca={'<set>' if self.ca_pem else None})"


@dataclass(frozen=True, slots=True)
class Series:
    """One series of an instant-vector answer."""

    labels: dict[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class QueryFailure:
    reason: UnknownReason
    message: str


QueryResult = list[Series] | QueryFailure


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One series of a range-query (matrix) answer: (timestamp, value) pairs, oldest first."""

    labels: dict[str, str]
    values: tuple[tuple[float, float], ...]


RangeResult = list[RangeSeries] | QueryFailure


def _error_reason(status: int, error_type: str) -> UnknownReason:
    # Prometheus' API errorType values (web/api/v1): bad_data and execution are the query's
    # fault; timeout and canceled are the evaluation running out of time.
    if error_type in ("timeout", "canceled"):
        return UnknownReason.TIMEOUT
    if error_type in ("bad_data", "execution") or status in (400, 422):
        return UnknownReason.QUERY_ERROR
    return UnknownReason.HTTP_ERROR


def _sample_value(raw: Any) -> float:
    # Values are strings in the API ("1.5", "NaN", "+Inf"); float() reads them all.
    return float(raw)


def _success_data(status: int, body: bytes) -> Any | QueryFailure:
    """The `data` of a successful API answer, or the classified failure."""
    try:
        doc = json.loads(body)
    except ValueError:
        snippet = body[:200].decode(errors="replace").strip()
        return QueryFailure(
            UnknownReason.HTTP_ERROR, f"HTTP {status}, not a Prometheus API answer: {snippet!r}"
        )
    if not isinstance(doc, dict):
        return QueryFailure(UnknownReason.HTTP_ERROR, f"HTTP {status}, unexpected answer {str(doc)[:200]!r}")
    if status != 200 or doc.get("status") != "success":
        error_type = str(doc.get("errorType", ""))
        error = str(doc.get("error", ""))[:500]
        return QueryFailure(_error_reason(status, error_type), f"HTTP {status} {error_type}: {error}".strip())
    try:
        return doc["data"]
    except KeyError as err:
        return QueryFailure(UnknownReason.HTTP_ERROR, f"malformed Prometheus answer: {err!r}")


def parse_range_response(status: int, body: bytes) -> RangeResult:
    """Turn one /api/v1/query_range HTTP answer into series or a classified failure."""
    data = _success_data(status, body)
    if isinstance(data, QueryFailure):
        return data
    try:
        if data["resultType"] != "matrix":
            return QueryFailure(UnknownReason.QUERY_ERROR, f"a range query returned a {data['resultType']}")
        return [
            RangeSeries(item["metric"], tuple((float(ts), _sample_value(raw)) for ts, raw in item["values"]))
            for item in data["result"]
        ]
    except (KeyError, IndexError, TypeError, ValueError) as err:
        return QueryFailure(UnknownReason.HTTP_ERROR, f"malformed Prometheus answer: {err!r}")


def parse_response(status: int, body: bytes) -> QueryResult:
    """Turn one /api/v1/query HTTP answer into series or a classified failure."""
    data = _success_data(status, body)
    if isinstance(data, QueryFailure):
        return data
    try:
        kind = data["resultType"]
        if kind == "vector":
            # JSON object keys and label values are already str: no per-label conversion.
            return [
                Series(item["metric"], _sample_value(item["value"][1]), float(item["value"][0]))
                for item in data["result"]
            ]
        if kind == "scalar":
            ts, raw = data["result"]
            return [Series({}, _sample_value(raw), float(ts))]
    except (KeyError, IndexError, TypeError, ValueError) as err:
        return QueryFailure(UnknownReason.HTTP_ERROR, f"malformed Prometheus answer: {err!r}")
    return QueryFailure(
        UnknownReason.QUERY_ERROR, f"the query returned a {kind}, expected an instant vector or a scalar"
    )


_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


# The standard library quotes byte by byte in Python: a grouped read at 1,000 workloads sends about
# 0.9 MB of signal queries alone (regexes naming every member), 46 ms of quoting. The same texts are
# sent read after read (the rendered queries are kept while the members stay, prometheus.py), so
# the quoted form of long ones is kept too. 32 texts: a group's signal and history queries are
# about 11, so about three groups read in turn stay quoted; their sizes add up to the fleet's.
_quoted_long = functools.lru_cache(maxsize=32)(functools.partial(urllib.parse.quote_plus, safe=""))


def _quoted(value: str) -> str:
    return _quoted_long(value) if len(value) > 256 else urllib.parse.quote_plus(value, safe="")


def form_body(form: dict[str, str]) -> bytes:
    """The form urlencoded, as httpx's `data=` would send it."""
    return "&".join(f"{_quoted(k)}={_quoted(v)}" for k, v in form.items()).encode("ascii")


def _ssl_context(endpoint: Endpoint) -> ssl.SSLContext | bool:
    if endpoint.insecure_skip_verify:
        return False
    if endpoint.ca_pem:
        return ssl.create_default_context(cadata=endpoint.ca_pem)
    return True


# httpx's own default pool: up to 100 connections, 20 of them kept alive when idle.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class PrometheusClient:
    """One connection pool to one Prometheus; every request waits its turn on a shared semaphore."""

    def __init__(
        self, endpoint: Endpoint, semaphore: asyncio.Semaphore, *, limits: httpx.Limits = DEFAULT_LIMITS
    ) -> None:
        self.endpoint = endpoint
        headers = {"Accept": "application/json"}
        if endpoint.bearer_token:
            headers["Authorization"] = f"Bearer {endpoint.bearer_token}"
        self._query_url = endpoint.url.rstrip("/") + "/api/v1/query"
        self._range_url = self._query_url + "_range"
        self._setup_error: QueryFailure | None = None
        try:
            verify = _ssl_context(endpoint)
        except (ssl.SSLError, ValueError) as err:
            # A broken CA bundle is the workload's configuration error, not an outage: report it
            # on every signal instead of raising inside the operator.
            self._setup_error = QueryFailure(UnknownReason.UNREACHABLE, f"invalid CA bundle: {err}")
            verify = True
        self._http = httpx.AsyncClient(
            headers=headers, verify=verify, follow_redirects=False, trust_env=False, limits=limits
        )
        self._exchanges = Exchanges(self._http, semaphore)
        self.requests_sent = 0

    async def query(self, expr: str, timeout: float) -> QueryResult:
        """Evaluate `expr` now; never raises for anything Prometheus or the network does."""
        answer = await self._post(self._query_url, {"query": expr}, timeout)
        return answer if isinstance(answer, QueryFailure) else parse_response(*answer)

    async def query_range(
        self, expr: str, start: float, end: float, step: float, timeout: float
    ) -> RangeResult:
        """Evaluate `expr` at start, start + step, ... up to end; never raises either."""
        form = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        answer = await self._post(self._range_url, form, timeout)
        return answer if isinstance(answer, QueryFailure) else parse_range_response(*answer)

    async def _post(self, url: str, form: dict[str, str], timeout: float) -> tuple[int, bytes] | QueryFailure:
        if self._setup_error is not None:
            return self._setup_error
        self.requests_sent += 1
        try:
            # The form's timeout asks Prometheus to stop evaluating at the deadline instead of
            # working on for nobody. The deadline only ends the waiting, it does not cancel the
            # exchange (a cancelled httpx request can lose its pooled connection for ever): that
            # ends by httpx's timeouts, or is cut at the same deadline if bytes keep dripping in,
            # and holds its slot of the semaphore until then (rwscaler.http_exchange).
            request = self._http.build_request(
                "POST",
                url,
                content=form_body({**form, "timeout": f"{max(1, int(timeout * 1000))}ms"}),
                headers=_FORM_HEADERS,
                timeout=httpx.Timeout(timeout),
            )
            response = await self._exchanges.send(request, wait=timeout, cut_after=timeout)
        except (TimeoutError, httpx.TimeoutException):
            return QueryFailure(
                UnknownReason.TIMEOUT, f"no answer from {self.endpoint.url} within {timeout:g}s"
            )
        except httpx.TransportError as err:
            detail = str(err) or type(err).__name__
            return QueryFailure(UnknownReason.UNREACHABLE, f"{self.endpoint.url}: {detail}")
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._exchanges.aclose()
