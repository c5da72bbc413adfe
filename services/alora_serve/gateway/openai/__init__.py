"""The OpenAI-compatible API, as vLLM's OpenAI server speaks it where intrinsics are
concerned: requests (``POST /v1/chat/completions``, ``request``), responses, stream chunks
and the model list (``responses``), and errors in OpenAI's body shape (``errors``).

``model`` names the base model or an intrinsic. An intrinsic's request arrives already
rewritten by its client (granite-common's ``IntrinsicsRewriter``: instruction appended,
response format and logprobs set from the io.yaml) and runs as sent, as aLoRA on the
conversation's base KV; its client processes the raw output. Every field here is
honoured; any other is a 400 that names it.
"""
