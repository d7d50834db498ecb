"""Result object, tables, JSON/CSV, traces and plots."""
from archsim.report.result import Result  # noqa: F401
