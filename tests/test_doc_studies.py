"""The study tables in the docs are what the tools that write them give with the current models
(a model change that moves them must rerun the tool)."""
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))


def between(doc: str, begin: str, end: str) -> str:
    text = (ROOT / "docs" / doc).read_text()
    return re.search(re.escape(begin) + r"\n(.*)" + re.escape(end), text, flags=re.S).group(1)


@pytest.mark.slow
def test_cim_study_table_is_current():
    import cim_study
    assert between("sram_cim.md", "<!-- STUDY -->", "<!-- /STUDY -->") == cim_study.table()


@pytest.mark.slow
def test_hetero_study_table_is_current():
    import hetero_study
    sw, systems, _ = hetero_study.study()
    md = hetero_study.table(hetero_study.run(sw, hetero_study.BATCHES, hetero_study.KVS), systems)
    assert between("hetero.md", "<!-- study:begin -->", "<!-- study:end -->") == md + "\n"


@pytest.mark.slow
def test_sparse_tc_study_table_is_current():
    import sparse_tc_study
    base, _, _, text = sparse_tc_study.results(sparse_tc_study.DENS)
    assert between("sparse_tc.md", "<!-- study:begin -->", "<!-- study:end -->") == \
        sparse_tc_study.doc_body(base, text)
