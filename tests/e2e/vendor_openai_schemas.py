#!/usr/bin/env python3
"""Extract the schemas the end-to-end suite validates against from the official OpenAI OpenAPI
spec (shared/wire/openai-openapi.yaml) into tests/e2e/openai-schemas.json.

The suite validates every completion, chunk, error and model list against those schemas. The
full spec is 3 MB of YAML that lives outside the repository; this subset (the four schemas and
everything they reference, unmodified) keeps a clean clone self-contained.
Run it again after updating the spec: ``.venv/bin/python tests/e2e/vendor_openai_schemas.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOTS = ("CreateChatCompletionResponse", "CreateChatCompletionStreamResponse", "ErrorResponse",
         "ListModelsResponse")
OUT = HERE / "openai-schemas.json"


def closure(schemas: dict) -> dict:
    """The root schemas and every schema they reference, transitively."""
    keep: dict = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = schemas[name]
        stack = [schemas[name]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                    todo.append(ref.rsplit("/", 1)[1])
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return {"components": {"schemas": dict(sorted(keep.items()))}}


def extract(spec_yaml: Path) -> dict:
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(spec_yaml, "rb") as f:
        spec = yaml.load(f, Loader=loader)
    return closure(spec["components"]["schemas"])


def main() -> int:
    sys.path.insert(0, str(HERE))
    import openai_schema
    subset = extract(openai_schema.full_spec_path())
    OUT.write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT} ({len(subset['components']['schemas'])} schemas)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
