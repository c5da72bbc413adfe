"""Load tests with Locust over the public gRPC API, on real multi-turn RAG conversations."""
