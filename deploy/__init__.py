"""Deployment assets; ``deploy.observability`` builds and checks the monitoring ones."""
