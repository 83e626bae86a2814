"""Run by tests/test_integrations.py with the Python of .venv-llamaindex (LlamaIndex, openai<3).

Asks LlamaIndex's OpenAI LLM, pointed at a `rerank serve` proxy, one question by chat, complete
and stream_chat; prints what came back as one JSON object.
Usage: python llamaindex_client.py PROXY_BASE_URL QUESTION
"""

import json
import sys

from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

base_url, question = sys.argv[1], sys.argv[2]
llm = OpenAI(model="gpt-4o-mini", api_base=base_url, api_key="sk-llamaindex", max_retries=0)
chat = llm.chat([ChatMessage(role="user", content=question)])
completed = llm.complete(question)
streamed = "".join(chunk.delta or "" for chunk in llm.stream_chat([ChatMessage(role="user", content=question)]))
raw = chat.raw if isinstance(chat.raw, dict) else chat.raw.model_dump()
print(json.dumps({"chat": chat.message.content, "raw": raw, "complete": completed.text, "stream": streamed}))
