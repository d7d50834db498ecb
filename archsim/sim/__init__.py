"""Shared timing kernel and the orchestration validate -> lower -> cost -> time -> result."""
