"""nDCG@k against values worked out by hand (trec_eval conventions) and the qrels reader."""

from __future__ import annotations

import math

import pytest

from lsr.eval.metrics import ndcg_at_k
from lsr.texts import read_qrels

from conftest import SCIFACT


def test_ndcg_by_hand():
    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"x": 1}, "q3": {"z": 0}}
    run = {"q1": {"b": 3.0, "c": 2.0, "a": 1.0}, "q2": {"y": 1.0}}
    # q1: dcg = 2/log2(2) + 1/log2(4) = 2.5; idcg = 2 + 1/log2(3)
    q1 = 2.5 / (2 + 1 / math.log2(3))
    assert ndcg_at_k(run, qrels, 10) == pytest.approx((q1 + 0.0) / 2)  # q3 has no positive judgment
    assert ndcg_at_k(run, qrels, 1) == pytest.approx((2 / 2 + 0) / 2)


def test_ndcg_ties_break_by_docid_descending():
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0}}  # trec_eval ranks b before a on a tie
    assert ndcg_at_k(run, qrels, 10) == pytest.approx(1 / math.log2(3))


def test_read_bundled_qrels():
    q = read_qrels(SCIFACT / "qrels" / "test.tsv")
    assert len(q) == 300 and sum(len(v) for v in q.values()) == 339
