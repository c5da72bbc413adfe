"""The README's client example: intrinsics and a streamed answer over the gRPC API.

python -m alora_serve.examples.grpc_client [--target localhost:50051] [--token T]
"""

from __future__ import annotations

import argparse

from alora_serve.client import AloraClient, result_value

DOCUMENTS = [
    {"doc_id": "1", "text": "The Eiffel Tower is 330 metres tall and stands in Paris."},
    {"doc_id": "2", "text": "It was completed in 1889 for the World's Fair."},
]
CONVERSATION = [
    ("user", "How tall is the Eiffel Tower?"),
    ("assistant", "It is 330 metres tall."),
]


def main(target: str, token: str | None) -> None:
    with AloraClient(target, token=token) as client:
        print("intrinsics:", ", ".join(info.name for info in client.list_intrinsics()))
        results = client.run_intrinsics(["answerability", "uncertainty"], CONVERSATION, DOCUMENTS)
        for result in results:
            usage = result.usage
            print(
                f"{result.intrinsic}: {result_value(result)} "
                f"({usage.reused_prompt_tokens}/{usage.prompt_tokens} prompt tokens reused)"
            )
        print("assistant: ", end="", flush=True)
        question = [("system", DOCUMENTS[1]["text"]), ("user", "When was it completed?")]
        for chunk in client.generate(question, max_tokens=48):
            print(chunk.text, end="", flush=True)
        print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--token", default=None, help="bearer token, if the server wants one")
    args = parser.parse_args()
    main(args.target, args.token)
