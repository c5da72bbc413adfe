"""The main job's front door (an OpenAI-style HTTP chat API until the gRPC gateway lands)."""
