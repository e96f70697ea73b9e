"""metrics/client.py's POST form: encoded exactly as application/x-www-form-urlencoded says."""

from __future__ import annotations

import urllib.parse

from rwscaler.metrics.client import form_body


def test_the_form_is_urlencoded_short_and_long_values_alike_and_again() -> None:
    regex = "|".join(f"db-{i}\\.x+é" for i in range(200))  # long: its quoted form is kept
    form = {"query": f'sum(rate(q{{database=~"{regex}"}}[60s])) / 2', "timeout": "5000ms", "a b": "&="}
    expected = urllib.parse.urlencode(form).encode("ascii")  # what httpx's data= sends
    assert len(form["query"]) > 256
    assert form_body(form) == expected
    assert form_body(form) == expected  # the kept quoting gives the same bytes
    assert urllib.parse.parse_qs(form_body(form).decode()) == {k: [v] for k, v in form.items()}
