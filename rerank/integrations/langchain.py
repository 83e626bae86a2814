"""LangChain: a ``ChatOpenAI`` answering every call with the best of N.

    from langchain_openai import ChatOpenAI
    from rerank.integrations.langchain import chat_openai

    llm = chat_openai(ChatOpenAI(model="gpt-4o-mini"), n=4)
    message = llm.invoke("Explain BM25 in two sentences.")
    rerank.explain(message)          # the ranking, from message.response_metadata["rerank"]

``ChatOpenAI(root_client=rerank.wrap(...))`` does NOT rerank: ChatOpenAI builds its own clients
unless ``client`` is given too, and then sends one request. :func:`chat_openai` replaces all four
clients (sync and async, chat and root) by wrapped copies of the ones ChatOpenAI built from its
own settings, so ``invoke``, ``stream``, ``batch``, the async twins, ``with_structured_output``
and ``use_responses_api=True`` all go through rerank.
"""

from __future__ import annotations

from typing import Any, Mapping

from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI

from ..middleware import wrap

__all__ = ["RerankChatOpenAI", "chat_openai"]

_CLIENTS = frozenset({"client", "async_client", "root_client", "root_async_client"})


def _ranking_of(response: Any) -> Any:
    if isinstance(response, Mapping):
        return response.get("rerank")
    return (getattr(response, "model_extra", None) or {}).get("rerank")


class RerankChatOpenAI(ChatOpenAI):
    """A ``ChatOpenAI`` that keeps the ranking of each answer in ``response_metadata["rerank"]``.

    Build it with :func:`chat_openai`; on its own it is a plain ``ChatOpenAI``.
    """

    def _create_chat_result(self, response: Any, generation_info: dict[str, Any] | None = None) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        ranking = _ranking_of(response)
        if ranking is not None:
            for generation in result.generations:
                generation.message.response_metadata["rerank"] = ranking
        return result

    def _convert_chunk_to_generation_chunk(self, chunk: Any, *args: Any, **kwargs: Any) -> ChatGenerationChunk | None:
        generation = super()._convert_chunk_to_generation_chunk(chunk, *args, **kwargs)
        ranking = _ranking_of(chunk)
        if generation is not None and ranking is not None:  # the stream's last chunk carries it
            generation.message.response_metadata["rerank"] = ranking
        return generation


def chat_openai(llm: ChatOpenAI, **wrap_options: Any) -> RerankChatOpenAI:
    """A copy of ``llm`` whose calls return the best of N; ``wrap_options`` are :func:`rerank.wrap`'s.

    The copy keeps every setting of ``llm`` (model, key, base URL, timeouts, ``http_client``...);
    ``llm`` itself is unchanged.
    """
    if not isinstance(llm, ChatOpenAI):
        raise TypeError(f"chat_openai takes a langchain_openai.ChatOpenAI, got {type(llm).__name__}")
    settings = {name: getattr(llm, name) for name in llm.model_fields_set - _CLIENTS}
    copy = RerankChatOpenAI(**settings)
    if copy.root_client is not None:
        copy.root_client = wrap(copy.root_client, **wrap_options)
        copy.client = copy.root_client.chat.completions
    copy.root_async_client = wrap(copy.root_async_client, **wrap_options)
    copy.async_client = copy.root_async_client.chat.completions
    return copy
