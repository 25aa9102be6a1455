"""The SQLite store of a sweep: results merge per point, a rewrite replaces, counts by status."""
from ufm.records.store import SweepStore


def _record(key, result, components, status="ok"):
    return {"key": key, "config": {"alpha": 0.0}, "result": result, "components": components, "status": status,
            "error": None}


def test_components_merge_and_rewrites_replace(tmp_path):
    with SweepStore(tmp_path / "s.sqlite") as store:
        store.put_many([_record("a", {"x": 1}, ["closed-form"]), _record("b", {"x": 2}, ["closed-form"])])
        store.put_many([_record("a", {"y": 3}, ["solve"], status="error")])
        rows = {r["key"]: r for r in store.rows()}
        assert rows["a"]["result"] == {"x": 1, "y": 3} and rows["a"]["components"] == ["closed-form", "solve"]
        assert store.components() == {"a": {"closed-form", "solve"}, "b": {"closed-form"}}
        assert (store.count(), store.count("error"), store.count("ok")) == (2, 1, 1)
        store.set_meta("spec", {"alphas": [0.0]})
    with SweepStore(tmp_path / "s.sqlite") as store:  # durable across connections
        assert store.meta("spec") == {"alphas": [0.0]} and store.meta("absent") is None
        assert store.count() == 2
