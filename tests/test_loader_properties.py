"""Property tests: whatever bytes a data file holds, loading ends in questions or one clear DataError."""

from __future__ import annotations

import json

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis: pip install -e '.[test]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from helpers.records import make_record  # noqa: E402
from qualbench.data import load_dataset_with_report  # noqa: E402
from qualbench.errors import DataError  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _load(path, loader):
    try:
        items, report = load_dataset_with_report({"loader": loader, "path": str(path)})
    except DataError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e).strip()
        return None
    assert report.n_kept == len(items) and report.n_read >= len(items)
    return items


@SETTINGS
@given(data=st.binary(max_size=400), loader=st.sampled_from(["qualbench_json", "jsonl"]))
def test_arbitrary_bytes_never_crash(tmp_path, data, loader):
    p = tmp_path / "bank.json"
    p.write_bytes(data)
    _load(p, loader)


@SETTINGS
@given(values=st.lists(json_values, max_size=5), good=st.integers(0, 3), as_lines=st.booleans())
def test_arbitrary_records_beside_good_ones(tmp_path, values, good, as_lines):
    recs = [make_record(1000 + i) for i in range(good)] + values
    p = tmp_path / "bank.json"
    if as_lines:
        p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in recs), encoding="utf-8")
    else:
        p.write_text(json.dumps(recs, ensure_ascii=False, indent=1), encoding="utf-8")
    items = _load(p, "qualbench_json")
    if good:  # good records always survive the bad ones beside them
        assert items is not None and {q.idx for q in items} >= {str(1000 + i) for i in range(good)}
