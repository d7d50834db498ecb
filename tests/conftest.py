import copy
import os

import pytest
from hypothesis import settings

# CI explores the same examples on every run (a failure there is reproducible); local runs
# keep drawing new examples.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

SMALL_ARCH = {
    "name": "tiny", "uarch": "systolic", "clock": "1 GHz", "tech_node_nm": 45, "precision": "int8",
    "array": {"rows": 32, "cols": 32, "dataflow": "os"},
    "sram": {"ifmap": "64 KiB", "filter": "64 KiB", "ofmap": "64 KiB"},
    "vector": {"lanes": 32},
    "memory": {"model": "bandwidth", "bandwidth": "10 GB/s", "latency": "0 ns"},
}


@pytest.fixture
def small_arch():
    return copy.deepcopy(SMALL_ARCH)
