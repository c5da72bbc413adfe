"""The front doors: the public gRPC API (alora.v1, a grpc.aio server inside the ingress
replica) and the HTTP surface's bodies and errors; both map the call model and the error
kinds, and nothing deeper."""
