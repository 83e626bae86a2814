"""The tools validator: every call names an offered function and its arguments fit that function's schema."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from jsonschema.exceptions import best_match

from ..safe_parse import literal_value
from ..scorers.base import Validator
from ..toolcalls import ParsedCall, match_function, parse_calls
from ..types import Candidate, Check, Request
from .json_validators import compile_schema, describe_error

_TYPE_ALIASES = {
    "string": "string", "str": "string", "char": "string", "character": "string", "text": "string",
    "integer": "integer", "int": "integer", "long": "integer", "short": "integer", "byte": "integer",
    "number": "number", "float": "number", "double": "number", "decimal": "number", "bigdecimal": "number",
    "boolean": "boolean", "bool": "boolean",
    "array": "array", "list": "array", "tuple": "array", "set": "array", "arraylist": "array",
    "object": "object", "dict": "object", "map": "object", "hashmap": "object",
    "null": "null",
}
_SUBSCHEMA_KEYS = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def normalise_schema(schema: Any) -> Any:
    """A copy of a function's ``parameters`` schema in standard JSON Schema types.

    Tool definitions often use language types (``dict``, ``float``, ``tuple``, ``String``,
    ``Boolean``); these map to ``object``, ``number``, ``array``, ``string``, ``boolean``.
    A type with no JSON Schema equivalent (``any``, ``Object``, a class name) is dropped, so
    that argument is left unchecked rather than always failing.
    """
    if isinstance(schema, list):
        return [normalise_schema(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            types = [_TYPE_ALIASES.get(t.lower()) if isinstance(t, str) else None for t in (value if isinstance(value, list) else [value])]
            if all(types):
                out["type"] = types[0] if len(types) == 1 else types
        elif key in _SUBSCHEMA_KEYS or key in _SUBSCHEMA_LISTS:
            out[key] = normalise_schema(value)
        elif key in _SUBSCHEMA_MAPS and isinstance(value, Mapping):
            out[key] = {k: normalise_schema(v) for k, v in value.items()}
        elif key == "required" and not isinstance(value, list):
            continue
        else:
            out[key] = value
    return out


def coerce_strings(schema: Any, value: Any) -> Any:
    """``value`` with strings that spell a non-string schema type (``"7"`` for an integer,
    ``"true"`` for a boolean, ``"[1, 2]"`` for an array) replaced by what they spell."""
    if not isinstance(schema, Mapping):
        return value
    types = schema.get("type")
    types = set(types) if isinstance(types, list) else {types} if isinstance(types, str) else set()
    if isinstance(value, str) and types and "string" not in types:
        parsed = _spelled(value)
        if parsed is not _NOTHING and _json_type(parsed) & types:
            value = parsed
    if isinstance(value, dict):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        return {k: coerce_strings(properties.get(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_strings(schema.get("items"), v) for v in value]
    return value


_NOTHING = object()


def _spelled(text: str) -> Any:
    text = text.strip()
    if len(text) > 100_000:
        return _NOTHING
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    ok, value = literal_value(text)
    return value if ok else _NOTHING


def _json_type(value: Any) -> set[str]:
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number", "integer"} if value.is_integer() else {"number"}
    if isinstance(value, dict):
        return {"object"}
    if isinstance(value, (list, tuple)):
        return {"array"}
    if value is None:
        return {"null"}
    return set()


class ToolCallValidator(Validator):
    """Each call in the answer names an offered function and passes its ``parameters`` schema.

    Calls are read by :func:`rerank.toolcalls.parse_calls` (native ``tool_calls``, JSON or Python
    call syntax). Names match exactly, else with ``.``/``-``/``_`` alike. Options:

    - ``require_call`` (default False): an answer with no call fails. Off by default because
      some requests should be answered in text (no offered function fits); whether to call at
      all is better decided by agreement across the pool (the ``tool-consensus`` scorer).
    - ``allow_extra_arguments`` (default False): an argument the function does not declare fails
      unless its schema allows additional properties.
    - ``strict_types`` (default False): an argument of the wrong JSON type fails. Off by default
      the call still passes, its message naming the mismatch: hand-written tool schemas are often
      looser than their tools (``integer`` where a float works, an item type for a nested array,
      a Java or JavaScript type for an argument the tool receives as source text), so a type
      mismatch is weak evidence of a wrong call, while an unknown function, a missing required
      argument, an undeclared one, a value outside an ``enum`` or unreadable arguments always fail.
    - ``coerce_strings`` (default True): with ``strict_types``, accept a string that spells the
      declared type (``"7"`` for an integer, ``"true"`` for a boolean), as lax runtimes such as
      pydantic coerce them; False is strict.

    An optional argument given as null counts as not given.
    """

    name = "tools"

    def __init__(
        self,
        *,
        require_call: bool = False,
        allow_extra_arguments: bool = False,
        strict_types: bool = False,
        coerce_strings: bool = True,
    ) -> None:
        self.require_call = require_call
        self.allow_extra_arguments = allow_extra_arguments
        self.strict_types = strict_types
        self.coerce_strings = coerce_strings

    def applies(self, request: Request) -> bool:
        """Only requests that offer tools."""
        return bool(request.tools)

    def check(self, request: Request, candidate: Candidate) -> Check:
        """Pass when every call is to an offered function with valid arguments (and, with ``require_call``, there is one)."""
        calls = parse_calls(candidate, tools=request.tools)
        if not calls:
            if self.require_call:
                return self.failed("no tool call found: the answer is text only (right only if no offered function fits)")
            return self.passed("no tool call: the answer is text only")
        found = self._problems(request, calls)
        problems = [problem for problem, is_type in found if self.strict_types or not is_type]
        if problems:
            more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
            return self.failed(problems[0] + more)
        names = ", ".join(dict.fromkeys((match_function(c.name, request.tools) or {"name": c.name})["name"]
                                        for c in calls))
        note = f" (argument types differ from the schema: {found[0][0]})" if found else ""
        return self.passed(f"{len(calls)} valid call{'s' if len(calls) > 1 else ''} to {names}{note}")

    def type_mismatch(self, request: Request, candidate: Candidate) -> str | None:
        """The first argument of a wrong JSON type in calls that are otherwise valid, else None
        (also None when a call has a problem other than a type: the gate reports that one)."""
        found = self._problems(request, parse_calls(candidate, tools=request.tools))
        return found[0][0] if found and all(is_type for _, is_type in found) else None

    def _problems(self, request: Request, calls: Sequence[ParsedCall]) -> list[tuple[str, bool]]:
        """Each problem of the calls, and whether it is only an argument's type."""
        found = [self._problem(i, call, request.tools, len(calls)) for i, call in enumerate(calls)]
        return [(problem, is_type) for problem, is_type in found if problem]

    def _problem(
        self, index: int, call: ParsedCall, tools: Sequence[Mapping[str, Any]], count: int
    ) -> tuple[str | None, bool]:
        """What is wrong with one call (None if nothing), and whether that is only argument types."""
        label = f"call {index + 1} ({call.name or '?'})" if count > 1 else f"call to {call.name or '?'}"
        if call.error or call.arguments is None:
            return f"{label}: {call.error or 'arguments could not be read'}", False
        function = match_function(call.name, tools)
        if function is None:
            offered = ", ".join(f.get("function", f).get("name", "?") for f in tools if isinstance(f, Mapping))
            return f"{label}: {call.name!r} is not an offered function (offered: {offered})", False
        schema = function.get("parameters")
        if not isinstance(schema, Mapping):
            return (f"{label}: {function['name']} takes no parameters" if call.arguments else None), False
        if not self.allow_extra_arguments:
            extra = self._extra_arguments(schema, call.arguments)
            if extra:
                known = ", ".join(schema.get("properties", {})) or "none"
                return f"{label}: {', '.join(map(repr, extra))} {'is not a parameter' if len(extra) == 1 else 'are not parameters'} of {function['name']} (parameters: {known})", False
        other, wrong_type = self._schema_errors(schema, call.arguments)
        if other or wrong_type:
            return f"{label}: {other or wrong_type}", not other
        return None, False

    def _schema_errors(self, schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """The most relevant violation of the function's schema other than a JSON type, and of a type."""
        validator = self._validator(schema)
        if validator is None:
            return None, None
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        # null for an optional parameter (``timeout=None``) means "not given", as leaving it out does
        arguments = {k: v for k, v in arguments.items() if v is not None or k in required}
        if self.coerce_strings:
            arguments = coerce_strings(normalise_schema(schema), arguments)
        try:
            errors = list(validator.iter_errors(arguments))
        except RecursionError:
            return "arguments are nested too deeply to check", None
        other = best_match(e for e in errors if e.validator != "type")
        wrong_type = best_match(e for e in errors if e.validator == "type")
        return (None if other is None else describe_error(other, root="arguments"),
                None if wrong_type is None else describe_error(wrong_type, root="arguments"))

    @staticmethod
    def _extra_arguments(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or "additionalProperties" in schema or "patternProperties" in schema:
            return []
        return [key for key in arguments if key not in properties]

    def _validator(self, schema: Mapping[str, Any]) -> Any:
        """A compiled validator for a function's parameters, or None when the schema is not valid JSON Schema."""
        return compile_schema(normalise_schema(schema))[0]
