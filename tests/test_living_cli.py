"""lsr add / delete / merge / search --filter / info on a living index, and their one-line errors."""

from __future__ import annotations

import json

import pytest

from lsr.cli.main import main
from lsr.index import open_index


def lsr(*args, expect=0):
    code = main([str(a) for a in args])
    assert code == expect, f"lsr {' '.join(map(str, args))} exited {code}"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run_ids(path):
    return [line.split()[2] for line in path.read_text().splitlines()]


@pytest.fixture
def vec_index(tmp_path):
    rows = [{"id": f"d{i}", "vector": {"a": 1 + i, "b": 1.0}} for i in range(20)]
    lsr("index", "--input", write_jsonl(tmp_path / "base.jsonl", rows), "--output", tmp_path / "ix")
    return tmp_path


def test_add_delete_merge_filter_info(vec_index, capsys):
    w = vec_index
    ix = w / "ix"
    add = [
        {
            "id": "n1",
            "vector": {"a": 100.0},
            "metadata": {"lang": "en", "year": 2001},
            "title": "T",
            "text": "x",
        },
        {"id": "n2", "vector": {"a": 90.0, "c": 1.0}, "metadata": {"lang": "de", "year": 1999}},
        {"id": "d19", "vector": {"b": 5.0}, "metadata": {"lang": "en"}},  # replaces d19
    ]
    lsr("add", "--index", ix, "--input", write_jsonl(w / "add.jsonl", add))
    assert "added 3 documents (1 replaced)" in capsys.readouterr().err
    q = write_jsonl(w / "q.jsonl", [{"id": "q1", "vector": {"a": 1.0}}])
    lsr("search", "--index", ix, "--queries", q, "--k", "3", "--output", w / "run.txt")
    assert run_ids(w / "run.txt") == ["n1", "n2", "d18"]
    lsr("search", "--index", ix, "--queries", q, "--filter", '{"lang": "en"}', "--output", w / "run2.txt")
    assert run_ids(w / "run2.txt") == ["n1"]  # d19's new version has no "a"
    flt = '{"year": {"lt": 2000}}'
    lsr("search", "--index", ix, "--queries", q, "--filter", flt, "--method", "bmp", "--output", w / "r3.txt")
    assert run_ids(w / "r3.txt") == ["n2"]
    lsr("delete", "--index", ix, "--id", "n1", "nope")
    assert "deleted 1 documents (1 ids not found)" in capsys.readouterr().err
    (w / "ids.txt").write_text("d0\nd1\n\n")
    lsr("delete", "--index", ix, "--ids", w / "ids.txt")
    lsr("search", "--index", ix, "--queries", q, "--k", "2", "--output", w / "run4.txt")
    assert run_ids(w / "run4.txt") == ["n2", "d18"]
    lsr("merge", "--index", ix, "--max-segments", "1")
    assert "-> 1 segments" in capsys.readouterr().err.replace("merged 2 ", "")
    assert open_index(ix).segments[0]["deleted"] == 0 and open_index(ix).n_live_docs == 19
    lsr("info", ix)
    out = capsys.readouterr().out
    assert "generation" in out and "seg-000002" in out and "lang (keyword)" in out
    lsr("info", ix, "--json")
    info = json.loads(capsys.readouterr().out)
    assert info["n_docs"] == 19 and len(info["segments"]) == 1
    lsr("bench", "--index", ix, "--queries", q, "--warmup", "1", "--json")
    assert json.loads(capsys.readouterr().out)["queries"] == 1


def test_commit_every(vec_index, capsys):
    w = vec_index
    rows = [{"id": f"x{i}", "vector": {"c": 1.0 + i}} for i in range(25)]
    lsr("add", "--index", w / "ix", "--input", write_jsonl(w / "add.jsonl", rows), "--commit-every", "10")
    ix = open_index(w / "ix")
    assert ix.generation == 3 and [s["docs"] for s in ix.segments] == [20, 10, 10, 5]


@pytest.mark.parametrize(
    "rows,message",
    [
        ([{"id": "p", "vector": {"a": 1}}, {"id": "p", "vector": {"a": 2}}], "duplicate document id 'p'"),
        ([{"id": "p", "vector": {"a": 1}, "metadata": {"lang": {"x": 1}}}], "field 'lang'"),
        ([{"id": "p", "vector": {"a": 1}, "metadata": [1]}], "'metadata' must be an object"),
        ([{"id": "p", "vector": {"a": -1}}], ">= 0"),
    ],
)
def test_bad_add_is_one_line_error_and_changes_nothing(vec_index, capsys, rows, message):
    w = vec_index
    lsr("add", "--index", w / "ix", "--input", write_jsonl(w / "bad.jsonl", rows), expect=2)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lsr: error:") and message in err[-1]
    assert not (w / "ix" / "generation-1.json").exists()
    assert type(open_index(w / "ix")).__name__ == "Index"


def test_bad_filter_and_delete_args(vec_index, capsys):
    w = vec_index
    q = write_jsonl(w / "q.jsonl", [{"id": "q1", "vector": {"a": 1.0}}])
    lsr("search", "--index", w / "ix", "--queries", q, "--filter", '{"lang": "en"}', expect=2)
    assert "unknown metadata field 'lang'" in capsys.readouterr().err
    lsr("search", "--index", w / "ix", "--queries", q, "--filter", "{oops", expect=2)
    assert "not valid JSON" in capsys.readouterr().err
    lsr("merge", "--index", w / "ix", "--max-segments", "0", expect=2)
    lsr("delete", "--index", w / "nope", "--id", "x", expect=2)
    assert "no such index" in capsys.readouterr().err


def test_add_beir_corpus_with_the_recorded_encoder(tmp_path, capsys):
    corpus = [
        {"_id": f"c{i}", "title": "", "text": t} for i, t in enumerate(["cats purr", "dogs bark loudly"])
    ]
    lsr(
        "index", "--input", write_jsonl(tmp_path / "c.jsonl", corpus), "--model", "splade-tiny",
        "--output", tmp_path / "ix", "--methods", "exact",
    )  # fmt: skip
    more = [
        {"_id": "c2", "title": "Birds", "text": "birds sing in the morning", "metadata": {"kind": "bird"}},
        {"_id": "c0", "title": "", "text": "cats sleep all day", "metadata": {"kind": "cat"}},
    ]
    lsr("add", "--index", tmp_path / "ix", "--input", write_jsonl(tmp_path / "m.jsonl", more))
    assert "added 2 documents (1 replaced)" in capsys.readouterr().err
    ix = open_index(tmp_path / "ix")
    r = ix.search(["birds singing"], k=1, filter={"kind": "bird"})[0]
    assert r.ids == ["c2"] and ix.document(int(r.docs[0]))["title"] == "Birds"
    assert ix.search(["cats"], k=3, filter={"kind": "cat"})[0].ids == ["c0"]
