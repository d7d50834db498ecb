"""Hardware configuration: pydantic models, YAML loading, presets and overrides."""
from archsim.config.loader import (  # noqa: F401
    apply_overrides, find_preset, list_presets, load_arch, load_yaml_file, parse_override,
    validate_model,
)
