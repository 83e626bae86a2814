"""Server-sent events: a whole chat completion or Responses API response replayed as the API's stream.

The middleware streams its chosen answer this way, and ``rerank.testing`` streams its canned ones.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping


def _event(data: Mapping[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n".encode("utf-8")


def _pieces(text: str) -> list[str]:
    """Stream-sized pieces of a text (a few words each); joined, they give the text back."""
    words = text.split(" ")
    return [" ".join(words[i : i + 4]) + (" " if i + 4 < len(words) else "") for i in range(0, len(words), 4)]


def chat_events(body: Mapping[str, Any], *, include_usage: bool) -> Iterator[bytes]:
    """A chat completion replayed as ``chat.completion.chunk`` events, ending with ``[DONE]``.

    The body's ``rerank`` field rides on the last chunk.
    """
    base = {"id": body.get("id"), "object": "chat.completion.chunk", "created": body.get("created"),
            "model": body.get("model"), "system_fingerprint": body.get("system_fingerprint")}
    if include_usage:
        base["usage"] = None
    chunks = []

    def chunk(index: int, delta: Mapping[str, Any], finish_reason: str | None = None) -> None:
        choice = {"index": index, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}
        chunks.append({**base, "choices": [choice]})

    for choice in body.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        chunk(index, {"role": "assistant", "content": "", "refusal": None})
        for piece in _pieces(message.get("content") or "") if message.get("content") else ():
            chunk(index, {"content": piece})
        for position, call in enumerate(message.get("tool_calls") or ()):
            function = call.get("function") or {}
            chunk(index, {"tool_calls": [{"index": position, "id": call.get("id"), "type": "function",
                                          "function": {"name": function.get("name"), "arguments": ""}}]})
            chunk(index, {"tool_calls": [{"index": position,
                                          "function": {"arguments": function.get("arguments") or ""}}]})
        chunk(index, {}, choice.get("finish_reason") or "stop")
    if include_usage:
        chunks.append({**base, "choices": [], "usage": body.get("usage")})
    if "rerank" in body and chunks:
        chunks[-1]["rerank"] = body["rerank"]
    for data in chunks:
        yield _event(data)
    yield b"data: [DONE]\n\n"


def response_events(body: Mapping[str, Any]) -> Iterator[bytes]:
    """A Responses API response replayed as its stream events, ``response.created`` to ``.completed``."""
    sequence = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> bytes:
        return _event({"type": kind, "sequence_number": next(sequence), **fields}, kind)

    pending = {**body, "status": "in_progress", "output": [], "usage": None}
    pending.pop("rerank", None)
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    for position, item in enumerate(body.get("output") or ()):
        item_id = item.get("id")
        if item.get("type") == "message":
            yield event("response.output_item.added", output_index=position,
                        item={**item, "status": "in_progress", "content": []})
            for part_index, part in enumerate(item.get("content") or ()):
                if part.get("type") != "output_text":
                    yield event("response.content_part.added", item_id=item_id, output_index=position,
                                content_index=part_index, part=part)
                    yield event("response.content_part.done", item_id=item_id, output_index=position,
                                content_index=part_index, part=part)
                    continue
                text = part.get("text") or ""
                yield event("response.content_part.added", item_id=item_id, output_index=position,
                            content_index=part_index, part={**part, "text": ""})
                for piece in _pieces(text) if text else ():
                    yield event("response.output_text.delta", item_id=item_id, output_index=position,
                                content_index=part_index, delta=piece, logprobs=[])
                yield event("response.output_text.done", item_id=item_id, output_index=position,
                            content_index=part_index, text=text, logprobs=[])
                yield event("response.content_part.done", item_id=item_id, output_index=position,
                            content_index=part_index, part=part)
        elif item.get("type") == "function_call":
            arguments = item.get("arguments") or ""
            yield event("response.output_item.added", output_index=position,
                        item={**item, "status": "in_progress", "arguments": ""})
            yield event("response.function_call_arguments.delta", item_id=item_id, output_index=position,
                        delta=arguments)
            yield event("response.function_call_arguments.done", item_id=item_id, output_index=position,
                        name=item.get("name"), arguments=arguments)
        else:
            yield event("response.output_item.added", output_index=position, item=item)
        yield event("response.output_item.done", output_index=position, item=item)
    yield event("response.completed", response=dict(body))
