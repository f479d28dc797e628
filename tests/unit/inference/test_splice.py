"""The model splice: only the top-level model value token changes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluicegate.inference.splice import SpliceError, find_model


def test_splice_keeps_every_other_byte() -> None:
    body = '{"z":1.50e+3, "messages":[{"model":"inner"}],\n "model" : "fast", "x":"caf\\u00e9 ✓"}'.encode()
    f = find_model(body)
    assert f.model == "fast"
    assert f.splice(body, "gpt-4.1") == body.replace(b'"fast"', b'"gpt-4.1"')


def test_escaped_key_and_value_and_multibyte_offsets() -> None:
    body = '{"ñ":"✓✓","mod\\u0065l":"f\\u0061st"}'.encode()
    f = find_model(body)
    assert f.model == "fast"
    out = f.splice(body, "été")
    assert json.loads(out) == {"ñ": "✓✓", "model": "été"}
    assert out.startswith('{"ñ":"✓✓","mod\\u0065l":'.encode())


@pytest.mark.parametrize(("body", "kind"), [
    (b'{"model":"a","model":"b"}', "duplicate_model"),
    (b'{"model":"a","m\\u006fdel":"b"}', "duplicate_model"),
    (b'{"messages":[{"model":"x"}]}', "missing_model"),
    (b'{"model":null}', "model_not_string"),
    (b'{"model":["a"]}', "model_not_string"),
    (b'[{"model":"a"}]', "not_object"),
    (b"", "not_object"),
    (b'{"model":"a"', "invalid_json"),
    (b'{"model":"a"} {}', "invalid_json"),
    (b'{"model":"a",}', "invalid_json"),
    (b'\xff{"model":"a"}', "not_utf8"),
])
def test_refusals(body: bytes, kind: str) -> None:
    with pytest.raises(SpliceError) as exc:
        find_model(body)
    assert exc.value.kind == kind


def test_empty_object_and_whitespace() -> None:
    with pytest.raises(SpliceError):
        find_model(b" { } ")
    assert find_model(b'\n\t{ "model" :"m"}\n').model == "m"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=6).filter(lambda k: k != "model"), json_values, max_size=5),
       st.text(max_size=10), st.text(max_size=10), st.booleans())
def test_roundtrip_property(extra: dict[str, object], model: str, new: str, ascii_only: bool) -> None:
    obj = {**extra, "model": model}
    body = json.dumps(obj, ensure_ascii=ascii_only).encode()
    f = find_model(body)
    assert f.model == model
    out = f.splice(body, new)
    assert json.loads(out) == {**extra, "model": new}
    assert out[: f.start] == body[: f.start] and out.endswith(body[f.end :])
