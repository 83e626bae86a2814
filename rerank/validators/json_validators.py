"""JSON validators: the answer holds JSON, and that JSON matches the request's JSON Schema."""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Mapping

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import extend, validator_for
from referencing.exceptions import Unresolvable

from ..errors import InputError
from ..fenced_code import fenced_blocks
from ..jsonl import json_depth
from ..linear_regex import UnsupportedPattern, compile_linear, search
from ..scorers.base import Validator
from ..types import Candidate, Check, Request

MAX_DEPTH = 200
"""Deepest nesting of arrays and objects accepted; deeper JSON is refused before parsing."""



def extract_json(text: str) -> tuple[Any, str | None]:
    """The JSON value an answer holds, bare or in a fenced block: ``(value, None)`` or ``(None, why not)``.

    A bare answer must be JSON as a whole; otherwise the first ```json block, else the first
    fenced block, is read. The reason names where parsing stopped.
    """
    stripped = text.strip()
    if not stripped:
        return None, "the answer is empty; expected JSON"
    value, error = _loads(stripped)
    if error is None:
        return value, None
    blocks = fenced_blocks(text)
    block = next((b for b in blocks if b.lang in ("json", "jsonc", "json5")), blocks[0] if blocks else None)
    if block is None:
        return None, f"the answer is not JSON: {error}"
    value, block_error = _loads(block.body)
    if block_error is None:
        return value, None
    where = f"```{block.lang} block" if block.lang else "fenced block"
    return None, f"the {where} is not JSON: {block_error}"


def _loads(text: str) -> tuple[Any, str | None]:
    depth = json_depth(text)
    if depth > MAX_DEPTH:
        return None, f"nested {depth} levels deep; at most {MAX_DEPTH} are accepted"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, _where(exc)
    except (RecursionError, ValueError) as exc:
        return None, str(exc) or "nested too deeply"


def _where(exc: json.JSONDecodeError) -> str:
    line = exc.doc.splitlines()[exc.lineno - 1] if exc.doc.strip() else ""
    start = max(0, exc.colno - 21)
    near = line[start : exc.colno + 19].strip()
    context = f" near {near!r}" if near else ""
    return f"{exc.msg} at line {exc.lineno}, column {exc.colno}{context}"


def json_path(path: Any, root: str = "$") -> str:
    """``$.items[0].price`` for a jsonschema error path."""
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if re.fullmatch(r"[A-Za-z_]\w*", str(part)) else f"[{json.dumps(part)}]")
    return out


def describe_error(error: ValidationError | SchemaError, *, root: str = "$") -> str:
    """One line for a schema violation: where it is and what is wrong, cut to a readable length."""
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return f"at {json_path(error.absolute_path, root)}: {message}"


def unwrap_schema(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The JSON Schema inside OpenAI's ``response_format`` shapes, or ``schema`` itself.

    Accepts ``{"type": "json_schema", "json_schema": {...}}`` and ``{"name", "schema", "strict"}``.
    """
    if schema.get("type") == "json_schema" and isinstance(schema.get("json_schema"), Mapping):
        schema = schema["json_schema"]
    if isinstance(schema.get("schema"), Mapping) and set(schema) <= {"name", "schema", "strict", "description"}:
        schema = schema["schema"]
    return schema


def _answer_json(candidate: Candidate, no_text: str) -> tuple[Any, str | None]:
    """The JSON in the answer's text and None, or None and why there is none (``no_text``, with
    ``{what}`` filled in, when the answer has no text)."""
    if not candidate.content:
        return None, no_text.format(what="a tool call" if candidate.tool_calls else "empty")
    return extract_json(candidate.content)


class JSONValidator(Validator):
    """The answer's text is JSON, bare or in a fenced block; the message says where parsing failed."""

    name = "json"

    def check(self, request: Request, candidate: Candidate) -> Check:
        """Pass when the content parses as JSON."""
        value, error = _answer_json(candidate, "no text to parse: the answer is {what}; expected JSON")
        if error is not None:
            return self.failed(error)
        return self.passed(f"valid JSON ({_kind(value)})")


class JSONSchemaValidator(Validator):
    """The answer's JSON matches ``request.schema`` (Draft 2020-12 unless the schema says otherwise).

    Runs only when the request has a schema. OpenAI's ``response_format`` wrappers are unwrapped.
    The message gives the most relevant violation as a path and a reason. ``check_formats``
    also checks ``format`` keywords (dates, emails...) where jsonschema can.
    """

    name = "json-schema"

    def __init__(self, *, check_formats: bool = True) -> None:
        self.check_formats = check_formats

    def applies(self, request: Request) -> bool:
        """Only requests with a schema."""
        return request.schema is not None

    def check(self, request: Request, candidate: Candidate) -> Check:
        """Pass when the answer's JSON has no schema violation."""
        validator = self._validator(request.schema or {})
        value, error = _answer_json(candidate, "no text to check: the answer is {what}; expected JSON matching the schema")
        if error is not None:
            return self.failed(error)
        try:
            errors = list(validator.iter_errors(value))
        except RecursionError:
            return self.failed("the JSON is nested too deeply to check against the schema")
        except Unresolvable as exc:
            raise InputError(
                f"the request's schema has a $ref that cannot be resolved ({exc}); "
                "remote references are never fetched: inline the referenced schema under $defs"
            ) from None
        if not errors:
            return self.passed("matches the schema")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return self.failed(describe_error(best_match(errors)) + more)

    def _validator(self, schema: Mapping[str, Any]) -> Any:
        validator, problem = compile_schema(unwrap_schema(schema), check_formats=self.check_formats)
        if problem:
            raise InputError(f"the request's schema is not a valid JSON Schema: {problem}; fix the schema")
        return validator


def compile_schema(schema: Mapping[str, Any], *, check_formats: bool = False) -> tuple[Any, str | None]:
    """A validator for ``schema`` (Draft 2020-12 unless it says otherwise), compiled once per
    distinct schema; ``(None, why)`` when the schema itself is not valid JSON Schema.

    Its regexes (``pattern``, ``patternProperties``, hence ``propertyNames`` and
    ``additionalProperties``) run with RE2, in linear time: a pattern RE2 cannot run raises
    :class:`rerank.linear_regex.UnsupportedPattern` (an InputError), as does
    ``unevaluatedProperties`` beside ``patternProperties`` (jsonschema would match those with
    Python's backtracking ``re``).
    """
    return _compile(json.dumps(schema, sort_keys=True, default=repr), check_formats)


@functools.lru_cache(maxsize=512)
def _compile(schema_json: str, check_formats: bool) -> tuple[Any, str | None]:
    schema = json.loads(schema_json)
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        return None, describe_error(exc)
    _check_patterns(schema)
    return _linear(cls)(schema, format_checker=cls.FORMAT_CHECKER if check_formats else None), None


def _check_patterns(schema: Any) -> None:
    """Compile every regex of ``schema`` with RE2 now, so that no pattern is met halfway through."""
    stack, pattern_properties, unevaluated = [schema], False, False
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack += item
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("pattern"), str):
            compile_linear(item["pattern"])
        if isinstance(item.get("patternProperties"), dict):
            pattern_properties = True
            for pattern in item["patternProperties"]:
                compile_linear(pattern)
        unevaluated = unevaluated or "unevaluatedProperties" in item
        stack += item.values()
    if pattern_properties and unevaluated:
        raise UnsupportedPattern("the schema has unevaluatedProperties beside patternProperties, which rerank "
                                 "cannot check in linear time; use additionalProperties instead")


def _pattern(validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]) -> Any:
    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]) -> Any:
    """jsonschema's additionalProperties, with the patterns matched by RE2."""
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [key for key in instance
              if key not in properties and not any(search(p, key) for p in patterns)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        shown = ", ".join(repr(each) for each in sorted(extras, key=str))
        if patterns:
            regexes = ", ".join(repr(each) for each in sorted(patterns))
            yield ValidationError(f"{shown} {'does' if len(extras) == 1 else 'do'} not match any of the regexes: {regexes}")
        else:
            yield ValidationError(f"Additional properties are not allowed ({shown} "
                                  f"{'was' if len(extras) == 1 else 'were'} unexpected)")


@functools.lru_cache(maxsize=None)
def _linear(cls: Any) -> Any:
    """``cls`` with its regex keywords run by RE2."""
    keywords = {"pattern": _pattern, "patternProperties": _pattern_properties,
                "additionalProperties": _additional_properties}
    return extend(cls, {k: v for k, v in keywords.items() if k in cls.VALIDATORS})  # type: ignore[no-untyped-call]  # types-jsonschema leaves extend() unannotated


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return f"an object with {len(value)} key{'s' if len(value) != 1 else ''}"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    return "a " + {str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
