"""The ReadWriteWorkload's string fields as types that are checked alike at admission and in the model.

Each type carries a CEL rule (`x-kubernetes-validations`, enforced by the API server, rendered
into the CRD by `rwscaler.render_crd`) and a Python validator (enforced when the operator, the
simulator or a test loads a spec with `rwscaler.core.spec`). The two accept and refuse the same
values: tests/integration/cluster/test_cluster_admission_differential.py sends generated specs to
the real API server (server-side dry-run) and to the model and compares. What CEL cannot check
(whether PromQL parses) the model checks, and the operator's admission webhook runs the model.

One readable message per mistake: a field's whole syntax is one CEL rule with one message (not a
schema `pattern`, whose error is the regex, beside a rule), and a rule never fails with a CEL
error: `duration()` only sees text whose parts are bounded (no overflow), `int()` only digits.
Pure; imported by `rwscaler.core.spec`.
"""

from __future__ import annotations

import re
from typing import Annotated

import promql_parser
from pydantic import AfterValidator, StringConstraints
from pydantic.config import JsonDict
from pydantic.json_schema import WithJsonSchema

from rwscaler.core.byte_sizes import BYTES_PATTERN
from rwscaler.core.durations import parse_duration
from rwscaler.core.placeholders import ONLY_KNOWN_PLACEHOLDERS, PLACEHOLDERS, filled_in


def cel(rule: str, message: str) -> JsonDict:
    return {"rule": rule, "message": message}


def _string(rule: JsonDict, max_length: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "maxLength": max_length, "x-kubernetes-validations": [rule]})


def _checked(pattern: str, message: str) -> AfterValidator:
    """The Python side of a `self.matches(pattern)` rule (RE2 and Python agree on these patterns;
    fullmatch, because Python's `$` also matches before a final newline and RE2's does not)."""
    compiled = re.compile(pattern.removeprefix("^").removesuffix("$"))

    def check(text: str) -> str:
        if compiled.fullmatch(text) is None:
            raise ValueError(f"{text!r} {message}")
        return text

    return AfterValidator(check)


def _matches(pattern: str) -> str:
    # In a CEL single-quoted string a backslash escapes: the regex's \. is written \\.
    return "self.matches('" + pattern.replace("\\", "\\\\") + "')"


# --- Kubernetes names --------------------------------------------------------------------------

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_SUBDOMAIN_WORDS = "must be a lowercase DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
# A StatefulSet, Deployment, Secret or ConfigMap in the workload's namespace.
ObjectName = Annotated[
    str,
    StringConstraints(max_length=253),
    _checked(_DNS_SUBDOMAIN, _SUBDOMAIN_WORDS),
    _string(cel(_matches(_DNS_SUBDOMAIN), _SUBDOMAIN_WORDS), 253),
]

_DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_LABEL_WORDS = "must be a DNS-1035 label (a Service name): lowercase letters, digits and '-', starting with a letter, ending with a letter or digit, at most 63 characters"
ServiceName = Annotated[
    str,
    StringConstraints(max_length=63),
    _checked(_DNS_LABEL, _LABEL_WORDS),
    _string(cel(_matches(_DNS_LABEL), _LABEL_WORDS), 63),
]

_CONFIG_KEY = r"^[-._a-zA-Z0-9]+$"
_KEY_WORDS = "must be a Secret or ConfigMap key: letters, digits, '-', '_' and '.'"
ConfigKey = Annotated[
    str,
    StringConstraints(max_length=253),
    _checked(_CONFIG_KEY, _KEY_WORDS),
    _string(cel(_matches(_CONFIG_KEY), _KEY_WORDS), 253),
]

# The name of a ReadWriteWorkload goes into the rwscaler.io/workload label of the objects rwscaler
# creates (read Service, EndpointSlice): a label value is at most 63 characters.
WORKLOAD_NAME_MAX = 63
_WORKLOAD_NAME_WORDS = (
    f"metadata.name must be at most {WORKLOAD_NAME_MAX} characters: rwscaler puts it in the "
    "rwscaler.io/workload label of the Service and EndpointSlice it creates"
)
WORKLOAD_NAME_RULE = cel(
    f"!has(self.metadata.name) || size(self.metadata.name) <= {WORKLOAD_NAME_MAX}", _WORKLOAD_NAME_WORDS
)


def check_workload_name(name: str) -> str:
    if len(name) > WORKLOAD_NAME_MAX:
        raise ValueError(f"{_WORKLOAD_NAME_WORDS} ({len(name)} given)")
    return name


# --- Durations ---------------------------------------------------------------------------------

# Up to three parts of at most 5 digits (and 9 decimals) with ms, s, m or h: "500ms", "1m30s",
# "2h". Bounded so that CEL's duration() never overflows (3 x 99999h is far under Go's 2562047h).
SPEC_DURATION_PATTERN = r"^([0-9]{1,5}(\.[0-9]{1,9})?(ms|s|m|h)){1,3}$"


def _duration_words(minimum: str) -> str:
    return (
        f"must be a duration of at least {minimum}, such as 5s, 1m or 1m30s "
        "(up to 3 parts of at most 5 digits, each with ms, s, m or h)"
    )


def _duration_check(minimum: str) -> AfterValidator:
    least, words = parse_duration(minimum), _duration_words(minimum)

    def check(text: str) -> str:
        if re.fullmatch(SPEC_DURATION_PATTERN[1:-1], text) is None or parse_duration(text) < least:
            raise ValueError(f"{text!r} {words}")
        return text

    return AfterValidator(check)


def _duration_schema(minimum: str) -> WithJsonSchema:
    rule = f"{_matches(SPEC_DURATION_PATTERN)} && duration(self) >= duration('{minimum}')"
    return _string(cel(rule, _duration_words(minimum)), 64)


# Objectives, timeouts: at least a millisecond (a sample's resolution).
Duration = Annotated[str, _duration_check("1ms"), _duration_schema("1ms")]
# metrics.staleness: a sample is at least a second old by the time it is read.
Staleness = Annotated[str, _duration_check("1s"), _duration_schema("1s")]


# --- Byte quantities ----------------------------------------------------------------------------

_BYTES_WORDS = (
    "must be a positive byte quantity, such as 64Mi, 500M or 1048576 (units Ki, Mi, Gi, Ti, k, M, G, T)"
)


def _byte_quantity(text: str) -> str:
    if re.fullmatch(BYTES_PATTERN[1:-1], text) is None:
        raise ValueError(f"{text!r} {_BYTES_WORDS}")
    return text


# Written as Kubernetes writes memory: a string, checked by one rule at admission.
ByteQuantity = Annotated[
    str,
    StringConstraints(max_length=32),
    AfterValidator(_byte_quantity),
    _string(cel(_matches(BYTES_PATTERN), _BYTES_WORDS), 32),
]


# --- PromQL and URLs ---------------------------------------------------------------------------


_PROMQL_WORDS = "must be a PromQL expression, not empty, using only the placeholders " + ", ".join(
    "${" + name + "}" for name in PLACEHOLDERS
)


def _promql(text: str) -> str:
    if not text.strip() or re.fullmatch(ONLY_KNOWN_PLACEHOLDERS[1:-1], text, re.S) is None:
        raise ValueError(_PROMQL_WORDS)
    try:
        promql_parser.parse(filled_in(text))
    except ValueError as err:
        raise ValueError(f"is not valid PromQL: {err}") from None
    return text


# CEL cannot parse PromQL: the rule refuses empty text and unknown placeholders; the model (and
# the admission webhook, which runs the model) refuses the rest.
PromQL = Annotated[
    str,
    StringConstraints(max_length=16384),
    AfterValidator(_promql),
    _string(cel(_matches(r"\S") + " && " + _matches(ONLY_KNOWN_PLACEHOLDERS), _PROMQL_WORDS), 16384),
]

_URL_WORDS = (
    "must be an http:// or https:// URL with a host name and, if a port is given, a port from 1 "
    "to 65535, e.g. http://prometheus.monitoring:9090"
)
# Kubernetes CEL's url library parses with Go's net/url (which lowercases the scheme: HTTP://
# is http:// and allows only digits in a port). The port's length is checked before int(), so a
# long port is a refusal, not an overflow error.
_URL_RULE = (
    "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != '' && "
    "(url(self).getPort() == '' || (size(url(self).getPort()) <= 5 && "
    "int(url(self).getPort()) >= 1 && int(url(self).getPort()) <= 65535))"
)
# What Go's net/url (url.ParseRequestURI) accepts, for the URLs rwscaler is given: a scheme, then
# after "//" an authority up to the first / ? or #. The host may hold RFC 3986's unreserved and
# sub-delims characters, ':' '<' '>' '"', and a percent escape only of a non-ASCII byte (or
# %25); the userinfo (before the last '@') the same and any escape; the port only digits.
_HOST_CHAR = r"""(?:[A-Za-z0-9\-._~!$&'()*+,;=:<>"]|%(?:[89A-Fa-f][0-9A-Fa-f]|25))"""
_HOST = re.compile(rf"{_HOST_CHAR}*|\[{_HOST_CHAR}+\]")
_USERINFO = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*")
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<authority>[^/?#]*)(?P<path>[^?]*)(?:\?.*)?", re.S
)
_PATH = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*", re.S)


def _host_and_port(authority: str) -> tuple[str, str] | None:
    """(host, port) as Go splits them; None where Go refuses the authority."""
    userinfo, at, hostport = authority.rpartition("@")
    if at and _USERINFO.fullmatch(userinfo) is None:
        return None
    if hostport.startswith("["):
        host, bracket, after = hostport.partition("]")
        host += bracket
        if after and not after.startswith(":"):
            return None
        port = after[1:]
    else:
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    if port and not (port.isascii() and port.isdigit()):
        return None
    return (host, port) if _HOST.fullmatch(host) else None


def _http_url(text: str) -> str:
    match = _URL.fullmatch(text)
    parts = None if match is None else _host_and_port(match["authority"])
    if (
        match is None
        or parts is None
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)  # Go refuses control characters
        or match["scheme"].lower() not in ("http", "https")
        or parts[0] in ("", "[]")
        or (parts[1] != "" and not (len(parts[1]) <= 5 and 1 <= int(parts[1]) <= 65535))
        or _PATH.fullmatch(match["path"]) is None
    ):
        raise ValueError(f"{text!r} {_URL_WORDS}")
    return text


HttpURL = Annotated[
    str,
    StringConstraints(max_length=2048),
    AfterValidator(_http_url),
    _string(cel(_URL_RULE, _URL_WORDS), 2048),
]
