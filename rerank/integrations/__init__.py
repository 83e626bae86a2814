"""Best of N inside frameworks that build their own OpenAI clients.

Each framework takes a client in its own way, and some of the obvious ways are silently ignored
(LangChain's ``ChatOpenAI(root_client=...)`` builds its own client; ``litellm.responses`` takes
no OpenAI client at all). The helpers here hand each framework the object it really uses:

- :func:`rerank.integrations.langchain.chat_openai` — a ``ChatOpenAI`` whose every route
  (``invoke``, ``stream``, ``ainvoke``, the Responses API) reranks, with the ranking in each
  message's ``response_metadata["rerank"]`` (``rerank.explain(message)`` reads it);
- :func:`rerank.integrations.litellm.handler` — the ``client=`` for ``litellm.responses`` /
  ``aresponses``; ``litellm.completion`` / ``acompletion`` take ``client=rerank.wrap(...)`` as is.

Each module imports its framework only when used (``pip install 'rerank[integrations]'``).
"""
