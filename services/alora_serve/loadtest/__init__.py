"""Load tests with Locust over the public gRPC API, on real multi-turn RAG conversations."""

# Defaults shared by `alora-serve loadtest`, its runner and the Locust process it starts.
MTRAG_REFERENCE = "tests/data/mtrag/mtrag_un_reference.jsonl"  # MTRAG conversations to replay
METRICS_URL = "http://127.0.0.1:9464/metrics"  # the main job's scrape endpoint
