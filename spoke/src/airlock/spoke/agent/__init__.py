"""The node agent: verifies, installs, health-checks and serves the models its spoke assigns."""
