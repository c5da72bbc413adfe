"""LoRA on vLLM-CPU, grouped: each run of tokens sharing an adapter is one matrix product
with that adapter's weights, where vLLM-CPU's stock ops copy an adapter's matrices for
every token (``lora_b_weights[indices]``) and contract them one token at a time. Plugged
in the way vLLM picks its LoRA backend: a platform plugin (``platform.py``) whose platform
(``cpu_platform.py``) names this punica wrapper (``grouped.py``)."""
