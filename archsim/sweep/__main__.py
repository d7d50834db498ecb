"""``python -m archsim.sweep SPEC --out results.db`` (also: status, export, pareto, plot)."""
from archsim.sweep.cli import main

if __name__ == "__main__":
    main(prog_name="python -m archsim.sweep")
