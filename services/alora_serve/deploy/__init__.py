"""The Helm chart's rendering and validation, and the deploy tool (``alora-serve deploy``)."""
