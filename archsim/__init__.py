"""archsim: a cycle-level accelerator architecture simulator for LLM workloads."""

__version__ = "0.1.0"
