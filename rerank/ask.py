"""`rerank ask`: one prompt, the best of N answers, streamed as it is written out.

The command builds an ``openai.OpenAI`` client, wraps it with :func:`rerank.wrap` and asks for a
streamed chat completion: the candidates are fetched whole, ranked, and the winner is replayed
chunk by chunk to stdout. The ranking rides on the stream's last chunk.
"""

from __future__ import annotations

from typing import Any, Callable

from .types import Ranking

__all__ = ["ASK_EXIT_HELP", "messages_of", "stream_best"]

ASK_EXIT_HELP = (
    "Exit codes: 0 answered; 1 no answer (the API was unreachable or answered with an error; with "
    "--strict, every candidate failed validation); 2 usage error, nothing sent (no API key, an empty "
    "prompt, a bad option); 130 interrupted."
)


def messages_of(prompt: str, system: str | None) -> list[dict[str, str]]:
    """The chat messages of one question: the system message (if any), then the prompt."""
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": prompt}]


def stream_best(client: Any, *, model: str, messages: list[dict[str, str]],
                write: Callable[[str], None]) -> tuple[str, Ranking]:
    """Ask a wrapped client; ``write`` each piece of the winner as it comes. The text and the ranking."""
    from .middleware import explain

    stream = client.chat.completions.create(model=model, messages=messages, stream=True)
    pieces: list[str] = []
    last = None
    for chunk in stream:
        last = chunk
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
                write(choice.delta.content)
    return "".join(pieces), explain(last)
