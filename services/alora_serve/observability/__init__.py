"""What operators see of a call: request ids, structured logs, traces, metric names."""
