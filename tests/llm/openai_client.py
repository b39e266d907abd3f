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

summary = {"models": models, "text": text, "chunks": len(chunks), "usage": whole.usage.model_dump()}

if "local-embedding" in models:
    sentences = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    # The client asks for base64 unless told otherwise, and decodes it.
    default = client.embeddings.create(model="local-embedding", input=sentences)
    floats = client.embeddings.create(model="local-embedding", input=sentences, encoding_format="float")
    vectors = [item.embedding for item in default.data]
    assert [item.index for item in default.data] == [0, 1, 2], default.data
    assert all(len(vector) == 384 for vector in vectors), [len(vector) for vector in vectors]
    for decoded, plain in zip(vectors, (item.embedding for item in floats.data)):
        assert max(abs(a - b) for a, b in zip(decoded, plain)) < 1e-6, "base64 and floats agree"
    cosine = lambda a, b: sum(x * y for x, y in zip(a, b))
    similar, different = cosine(vectors[0], vectors[1]), cosine(vectors[0], vectors[2])
    assert abs(similar - 0.7553) < 1e-3 and abs(different + 0.105) < 1e-3, (similar, different)
    assert default.usage.prompt_tokens == 8 + 11 + 9 == default.usage.total_tokens, default.usage
    one = client.embeddings.create(model="local-embedding", input="A man is eating food.", encoding_format="float")
    assert max(abs(a - b) for a, b in zip(one.data[0].embedding, floats.data[0].embedding)) < 1e-6
    try:
        client.embeddings.create(model="local-embedding", input="x", dimensions=128)
        raise AssertionError("128 dimensions were answered")
    except openai.BadRequestError as error:
        assert "384 dimensions" in str(error), error
    try:
        client.chat.completions.create(model="local-embedding", messages=question)
        raise AssertionError("an embedding model chatted")
    except openai.NotFoundError as error:
        assert "no chat model" in str(error), error
    summary["cosines"] = [round(similar, 4), round(different, 4)]

print(json.dumps(summary))
