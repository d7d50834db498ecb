import copy

import pytest

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
