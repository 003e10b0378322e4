"""README example: the official OpenAI Python SDK pointed at the proxy.

    pip install openai
    PROXY_URL=https://your-worker.example.workers.dev PROXY_TOKEN=... python python_client.py
"""
import os

from openai import OpenAI

PROXY_URL = os.environ["PROXY_URL"].rstrip("/")
PROXY_TOKEN = os.environ["PROXY_TOKEN"]
MODEL = os.environ.get("MODEL", "fast")

# The project's original example put the full endpoint in base_url; the proxy accepts that too.
client = OpenAI(base_url=f"{PROXY_URL}/v1/chat/completions", api_key=PROXY_TOKEN)

response = client.chat.completions.create(
    model=MODEL,
    messages=[{"role": "user", "content": "Hello from Python"}],
)
print(response.choices[0].message.content)
