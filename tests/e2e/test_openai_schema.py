"""Unit tests for tests/e2e/openai_schema.py (no proxy needed)."""

from __future__ import annotations

import pytest

import openai_schema

CHUNK = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
         "model": "gpt-4o-mini",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                      "logprobs": None, "finish_reason": None}], "usage": None}
USAGE_CHUNK = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
               "model": "gpt-4o-mini", "choices": [],
               "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}
COMPLETION = {"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916,
              "model": "gpt-4o-mini",
              "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls",
                           "message": {"role": "assistant", "content": None, "refusal": None,
                                       "tool_calls": [{"id": "call_abc123", "type": "function",
                                                       "function": {"name": "f", "arguments": "{}"}}]}}],
              "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99}}


def test_spec_file_found():
    assert openai_schema.spec_path().is_file(), openai_schema.spec_path()


def test_valid_documents_pass():
    openai_schema.validate_chunk(CHUNK)  # needs the nullable rewrite (usage/finish_reason null)
    openai_schema.validate_chunk(USAGE_CHUNK)
    openai_schema.validate_completion(COMPLETION)
    openai_schema.validate_error({"error": {"message": "m", "type": "t", "param": None, "code": None}})
    openai_schema.validate_models({"object": "list", "data": [
        {"id": "plain", "object": "model", "created": 0, "owned_by": "ai-worker-proxy"}]})


def test_chunk_with_wrong_object_is_rejected():
    bad = dict(CHUNK, object="chat.completion")
    with pytest.raises(AssertionError, match="chat.completion.chunk"):
        openai_schema.validate_chunk(bad)


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("created"),
    lambda d: d["choices"][0].pop("logprobs"),
    lambda d: d["choices"][0]["message"].pop("refusal"),
    lambda d: d["choices"][0].update(finish_reason="banana"),
])
def test_completion_violations_are_rejected(mutate):
    import copy
    bad = copy.deepcopy(COMPLETION)
    mutate(bad)
    with pytest.raises(AssertionError):
        openai_schema.validate_completion(bad)


def test_error_missing_param_is_rejected():
    with pytest.raises(AssertionError):
        openai_schema.validate_error({"error": {"message": "m", "type": "t", "code": None}})


def test_nullable_rewrite():
    out = openai_schema._preprocess({"type": "string", "nullable": True, "enum": ["a"],
                                     "x-oaiMeta": {}, "discriminator": {"propertyName": "t"},
                                     "properties": {"nullable": {"type": "integer"}}})
    assert out == {"type": ["string", "null"], "enum": ["a", None],
                   "properties": {"nullable": {"type": "integer"}}}
    assert openai_schema._preprocess({"$ref": "#/x", "nullable": True}) == \
        {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}


def test_vendored_schemas_match_the_full_spec():
    """openai-schemas.json is exactly what vendor_openai_schemas.py extracts from the spec."""
    import json

    import vendor_openai_schemas

    full = openai_schema.full_spec_path()
    if not full.is_file():
        pytest.skip(f"the full spec is not beside this checkout ({full})")
    assert json.loads(openai_schema.VENDORED.read_text()) == vendor_openai_schemas.extract(full)
