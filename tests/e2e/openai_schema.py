"""Validate proxy outputs against the official OpenAI OpenAPI spec.

The schemas come from the official spec, ``shared/wire/openai-openapi.yaml`` (openai/openai-openapi,
see shared/wire/sources.md): ``tests/e2e/openai-schemas.json`` holds the ones used here and all
they reference, extracted unmodified by ``vendor_openai_schemas.py`` so that a clean clone needs
nothing outside the repository; ``$OPENAI_OPENAPI_YAML`` points at a full spec instead.

The YAML mixes OpenAPI-3.0 ``nullable: true`` with 3.1 type unions, so before validating with
JSON Schema 2020-12 it is preprocessed:

* ``nullable: true`` → ``type: [T, "null"]`` (plus ``null`` in ``enum``), or
  ``anyOf: [<schema>, {"type": "null"}]`` when the schema has no ``type``;
* ``discriminator`` and every ``x-*`` extension key are dropped;
* ``$ref: "#/components/..."`` is resolved by registering the whole document as one resource.

The loaded + preprocessed spec is cached per process (it is ~3 MB).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:openai-openapi"


VENDORED = Path(__file__).resolve().parent / "openai-schemas.json"


def full_spec_path() -> Path:
    """The full spec: ``$OPENAI_OPENAPI_YAML``, else shared/ beside the repository."""
    env = os.environ.get("OPENAI_OPENAPI_YAML")
    if env:
        return Path(env)
    # tests/e2e/openai_schema.py → parents[2] is the repo root, parents[3] holds shared/.
    return Path(__file__).resolve().parents[3] / "shared" / "wire" / "openai-openapi.yaml"


def spec_path() -> Path:
    return Path(os.environ["OPENAI_OPENAPI_YAML"]) if os.environ.get("OPENAI_OPENAPI_YAML") else VENDORED


def _preprocess(node):
    if isinstance(node, list):
        return [_preprocess(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if isinstance(k, str) and (k.startswith("x-") or k == "discriminator"):
            continue
        # property *names* live under "properties"; keep them verbatim (a property could be
        # called "nullable" or "x-foo").
        if k == "properties" and isinstance(v, dict):
            out[k] = {pk: _preprocess(pv) for pk, pv in v.items()}
        else:
            out[k] = _preprocess(v)
    if out.pop("nullable", False) is True:
        if "type" in out:
            t = out["type"]
            types = list(t) if isinstance(t, list) else [t]
            if "null" not in types:
                types.append("null")
            out["type"] = types
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = out["enum"] + [None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@functools.lru_cache(maxsize=1)
def load_spec() -> dict:
    path = spec_path()
    if path.suffix == ".json":
        raw = json.loads(path.read_text())
    else:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path, "rb") as f:
            raw = yaml.load(f, Loader=loader)
    return _preprocess(raw)


@functools.lru_cache(maxsize=1)
def _registry() -> Registry:
    resource = Resource.from_contents(load_spec(), default_specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource)


@functools.lru_cache(maxsize=None)
def validator(schema_name: str) -> Draft202012Validator:
    if schema_name not in load_spec()["components"]["schemas"]:
        raise KeyError(f"no components.schemas.{schema_name} in {spec_path()}")
    return Draft202012Validator({"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"},
                                registry=_registry())


def errors(schema_name: str, instance) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator(schema_name).iter_errors(instance)]


def validate(schema_name: str, instance) -> None:
    """Raise AssertionError listing every violation of components.schemas.<schema_name>."""
    errs = errors(schema_name, instance)
    if errs:
        raise AssertionError(f"{schema_name} violations:\n  " + "\n  ".join(errs[:20])
                             + f"\ninstance: {instance!r}"[:2000])


def validate_completion(obj) -> None:
    validate("CreateChatCompletionResponse", obj)


def validate_chunk(obj) -> None:
    validate("CreateChatCompletionStreamResponse", obj)


def validate_error(obj) -> None:
    validate("ErrorResponse", obj)


def validate_models(obj) -> None:
    validate("ListModelsResponse", obj)
