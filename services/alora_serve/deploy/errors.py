"""What the deploy tool and the chart's rendering refuse, in words that say what to do."""


class DeployError(RuntimeError):
    """What the API server refused, or what is missing."""


class ChartError(DeployError, ValueError):
    """Values the chart refuses, or a template that fails, with Helm's message."""
