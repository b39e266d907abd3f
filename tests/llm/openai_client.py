"""The official `openai` client (pinned in requirements.txt), unmodified, against `causeway gateway`
serving a real local model. Usage: python openai_client.py BASE_URL (ending in /v1).

Every check asserts with what it saw; the last line printed is a JSON summary."""
import asyncio
import json
import sys

import openai

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
question = [{"role": "user", "content": "Complete: The capital of France is"}]

models = [model.id for model in client.models.list()]
assert "local" in models, models

whole = client.chat.completions.create(model="local", messages=question, temperature=0)
text = whole.choices[0].message.content
assert text == "The capital of France is Paris.", text
assert whole.choices[0].finish_reason == "stop", whole
assert whole.choices[0].message.role == "assistant", whole
assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens, whole.usage

chunks = list(
    client.chat.completions.create(
        model="local", messages=question, temperature=0, stream=True, stream_options={"include_usage": True}
    )
)
streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
assert streamed == text, (streamed, text)
assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
assert finishes == ["stop"], finishes
assert chunks[-1].choices == [] and chunks[-1].usage is not None, chunks[-1]
assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens, (chunks[-1].usage, whole.usage)

# The gateway always asks for usage upstream; a caller who did not ask never sees the usage chunk.
plain = list(client.chat.completions.create(model="local", messages=question, temperature=0, stream=True))
assert all(chunk.usage is None for chunk in plain), [chunk.usage for chunk in plain]
assert all(chunk.choices for chunk in plain), "no usage-only chunk"

stopped = client.chat.completions.create(model="local", messages=question, temperature=0, stop=["Paris"])
assert stopped.choices[0].message.content == "The capital of France is ", stopped
assert stopped.choices[0].finish_reason == "stop", stopped

short = client.chat.completions.create(model="local", messages=question, temperature=0, max_tokens=3)
assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3, short

story = [{"role": "user", "content": "Tell me a short story about a fox."}]
first = client.chat.completions.create(model="local", messages=story, temperature=1, seed=7, max_tokens=12)
again = client.chat.completions.create(model="local", messages=story, temperature=1, seed=7, max_tokens=12)
assert first.choices[0].message.content == again.choices[0].message.content, (first, again)

try:
    client.chat.completions.create(model="local", messages=[])
    raise AssertionError("an empty conversation was answered")
except openai.BadRequestError as error:
    assert "empty" in str(error), error
try:
    client.chat.completions.create(model="nope", messages=question)
    raise AssertionError("an unknown model was answered")
except openai.NotFoundError as error:
    assert "local" in str(error), error


async def streamed_async():
    async_client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    stream = await async_client.chat.completions.create(model="local", messages=question, temperature=0, stream=True)
    return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])


assert asyncio.run(streamed_async()) == text

print(json.dumps({"models": models, "text": text, "chunks": len(chunks), "usage": whole.usage.model_dump()}))
