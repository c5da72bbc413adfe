"""The public gRPC API (alora.v1): a grpc.aio server inside the ingress replica."""
