"""Build a real-text BEIR collection of >= 300,000 short passages from text available offline.

Why: synthetic vectors (``/work/shared/bench/synth_lsr.py``) have no real term co-occurrence and
SciFact has only 5,183 documents; pruning methods (Seismic, BMP) behave differently on real
learned-sparse vectors at scale (issue 17). This recipe makes a collection of a few hundred thousand
real passages that anyone can rebuild on a Debian machine with the project's Python packages
installed, without downloading a data set.

Sources (all read in a fixed, sorted order):

* **Debian package descriptions**: the long descriptions of the ``Translation-en`` files of
  Debian bookworm (``main``, plus ``-updates`` and ``-security``). Docker images set
  ``Acquire::Languages "none"``, so those files are fetched into a private lists folder (the
  system's apt state is not touched) with::

      apt-get update -o Dir::State::Lists=LISTS -o Dir::Cache=CACHE -o Acquire::Languages=en

  (``--apt-lists LISTS``; this script runs it when the folder holds no ``Translation-en``). Each
  package's title is its name; the text is its long description.
* **Python docs**: the docstrings of every module, class and function of the ``.py`` files under
  ``--site-packages`` (default: this interpreter's site-packages, its base interpreter's when run
  from a virtual environment, and the standard library; parsed with :mod:`ast`, never imported),
  and the README/Markdown/reST files and ``METADATA`` long descriptions found there (code blocks,
  doctests, directives, tables and URLs dropped). The title is the dotted name
  (``numpy.linalg.norm``) or the file's path.
* **Man pages**: the English pages (``man1``..``man9``) under ``--man`` (default ``/usr/share/man``),
  roff macros and escapes removed, no-fill/example blocks and the synopsis, see-also, authors,
  files, history and bugs sections skipped; the title is ``name(section)``.

On this machine (Debian bookworm, the project's dependencies installed, seed 42) it wrote 301,991
passages: 65,974 Debian, 108,293 docstring, 10,568 Python doc, 117,156 man (120,013 duplicates
dropped), 48.1 words per passage (median 49, p5-p95 24-69), 1,000 queries of 6.7 words, in ~10 min.

Each text is split into sentences, and sentences are packed into passages of ``--min-words`` to
``--max-words`` words (default 20-80, aiming at ~``--target-words``); a longer sentence is cut
into pieces, a short remainder is merged into the previous passage, and a text shorter than
``--min-words`` is dropped. Passages are deduplicated on their lower-cased, whitespace-normalised
text (the first one in source order is kept), and each passage's id is ``deb-``/``py-`` followed
by the first 16 hex digits of the SHA-1 of that normalised text: stable across runs and machines,
and unique once duplicates are gone. Passages with under 60% alphabetic words (tables, code left
over, version lists) are dropped.

Queries: 1,000 (``--n-queries``) Debian **short descriptions** ("command-line tool to convert PDF
files to text", "Python bindings for the GTK toolkit"), sampled with ``--seed`` among packages with
at least one passage in the collection, one per distinct short description. Short descriptions are
written by people to say what a package is for, in the few words a user types into a package
search, so they look like real searches (5-10 words, no boilerplate), and they are never part of
the collection (only long descriptions are), so a query never finds its own text. The passages of
the query's package (after deduplication, the surviving copies) are its relevant documents in
``qrels/test.tsv``, which makes nDCG a sanity check of the encoder on this data; the benchmark
itself measures recall against exact search and needs no qrels.

Output (``--out``, default ``/work/data/real300k``; never commit it): ``corpus.jsonl`` (``{"_id",
"title", "text", "metadata": {"source"}}``), ``queries.jsonl`` (``{"_id", "text"}``),
``qrels/test.tsv`` and ``stats.json``. The same inputs and seed give byte-identical files.

    python benchmarks/make_real_collection.py --out /work/data/real300k --seed 42
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import sysconfig
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm.auto import tqdm

DEFAULT_LISTS = "/work/data/aptlists"
_SENT = re.compile(r"(?<=[.!?;:])\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]")
_URL = re.compile(r"https?://\S+|www\.\S+")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_HTML = re.compile(r"<[^>]{0,200}>")
_RST_ROLE = re.compile(r":[a-zA-Z:]+:`([^`<]*)(?:<[^>]*>)?`")
_MARKUP = re.compile(r"[`*_|#]{1,3}")


# --------------------------------------------------------------------------- text -> passages
def clean_lines(text: str) -> list[str]:
    """Prose paragraphs of a docstring / Markdown / reST text: code blocks (fenced, indented, doctest),
    directives, tables, headings' underlines, and field-list markers dropped; links reduced to their
    words; URLs removed. Returns one string per paragraph."""
    paras: list[str] = []
    cur: list[str] = []
    fence = False
    after_literal = False  # reST "::" opens an indented literal block
    for raw in text.splitlines():
        line = raw.rstrip()
        s = line.strip()
        if s.startswith(("```", "~~~")):
            fence = not fence
            continue
        indented = len(line) - len(line.lstrip()) >= 4
        if fence or (after_literal and (indented or not s)):
            if s and cur:
                paras.append(" ".join(cur))
                cur = []
            continue
        after_literal = False
        if not s:
            if cur:
                paras.append(" ".join(cur))
                cur = []
            continue
        if (
            s.startswith((">>>", "...", ".. ", "$ ", "|", "+-", "==", "--", "#!", "%", "In [", "Out["))
            or re.fullmatch(r"[-=~^*+#`:.'\"]{3,}", s)
            or (indented and not cur)  # an indented block starting a paragraph is code
        ):
            if cur:
                paras.append(" ".join(cur))
                cur = []
            continue
        if s.endswith("::"):
            after_literal = True
            s = s[:-1]
        s = _MD_LINK.sub(r"\1", s)
        s = _RST_ROLE.sub(r"\1", s)
        s = _URL.sub("", s)
        s = _HTML.sub(" ", s)
        s = _MARKUP.sub("", s)
        s = s.lstrip("-*+• ").strip()
        if s:
            cur.append(s)
    if cur:
        paras.append(" ".join(cur))
    return [" ".join(p.split()) for p in paras if p.strip()]


def is_prose(words: list[str]) -> bool:
    """At least 60% of the whitespace tokens are plain words (not numbers, code, or symbols)."""
    if not words:
        return False
    return sum(1 for w in words if _WORD.fullmatch(w.strip(".,;:!?()\"'")) is not None) >= 0.6 * len(words)


def pack_passages(paragraphs: Iterable[str], min_words: int, target_words: int, max_words: int) -> list[str]:
    """Sentences of ``paragraphs`` packed, in order, into passages of ``min_words``..``max_words`` words:
    a passage closes once it reaches ``target_words`` or the next sentence would pass ``max_words``;
    a sentence longer than ``max_words`` is cut into ``target_words``-word pieces; a last piece under
    ``min_words`` joins the previous passage when that stays within ``max_words``, else is dropped."""
    out: list[list[str]] = []
    cur: list[str] = []
    sentences: list[list[str]] = []
    for p in paragraphs:
        for sent in _SENT.split(p):
            w = sent.split()
            while len(w) > max_words:
                sentences.append(w[:target_words])
                w = w[target_words:]
            if w:
                sentences.append(w)
    for w in sentences:
        if cur and len(cur) + len(w) > max_words:
            out.append(cur)
            cur = []
        cur = cur + w
        if len(cur) >= target_words:
            out.append(cur)
            cur = []
    if cur:
        if len(cur) >= min_words:
            out.append(cur)
        elif out and len(out[-1]) + len(cur) <= max_words:
            out[-1] = out[-1] + cur
    return [" ".join(w) for w in out if len(w) >= min_words and is_prose(w)]


def norm_key(text: str) -> str:
    """The dedup key and id source: lower-cased, whitespace-normalised text."""
    return " ".join(text.lower().split())


# --------------------------------------------------------------------------- Debian
def ensure_translations(lists: Path) -> list[Path]:
    """The ``*_Translation-en*`` files in ``lists``, fetched with ``apt-get update`` into that private
    folder first when it holds none (the system's apt state is left alone)."""
    found = sorted(lists.glob("*Translation-en*"))
    if found:
        return found
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    cache = lists.parent / (lists.name + "-cache")
    cmd = [
        "apt-get", "update", "-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={cache}",
        "-o", "Acquire::Languages=en",
    ]  # fmt: skip
    print("fetching Debian Translation-en files:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    found = sorted(lists.glob("*Translation-en*"))
    if not found:
        raise SystemExit(f"make_real_collection: error: apt-get update wrote no Translation-en into {lists}")
    return found


def read_translations(paths: list[Path]) -> Iterator[tuple[str, str, list[str]]]:
    """(package, short description, long-description paragraphs) per record of the Translation-en
    files (decompressed with ``apt-helper cat-file``, which reads apt's lz4/xz/gz lists)."""
    for path in paths:
        text = subprocess.run(
            ["/usr/lib/apt/apt-helper", "cat-file", str(path)], check=True, capture_output=True, text=True
        ).stdout
        for block in text.split("\n\n"):
            pkg = short = ""
            long_lines: list[str] = []
            in_desc = False
            for line in block.splitlines():
                if line.startswith("Package:"):
                    pkg = line.split(":", 1)[1].strip()
                    in_desc = False
                elif line.startswith("Description-en:"):
                    short = line.split(":", 1)[1].strip()
                    in_desc = True
                elif in_desc and line.startswith(" "):
                    long_lines.append(line[1:])
                else:
                    in_desc = False
            if not pkg or not short:
                continue
            paras: list[str] = []
            cur: list[str] = []
            for ln in long_lines:
                s = ln.strip()
                if s == ".":
                    if cur:
                        paras.append(" ".join(cur))
                        cur = []
                    continue
                s = (
                    _URL.sub("", s).lstrip("-*+o• ").strip()
                    if s[:2] in ("* ", "- ", "o ", "+ ")
                    else _URL.sub("", s)
                )
                if s:
                    cur.append(s)
            if cur:
                paras.append(" ".join(cur))
            yield pkg, short, [" ".join(p.split()) for p in paras]


# --------------------------------------------------------------------------- Python
def iter_docstrings(path: Path, module: str) -> Iterator[tuple[str, str]]:
    """(dotted name, docstring) for the module, classes and functions of one source file."""
    try:
        src = path.read_text(encoding="utf-8", errors="replace")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(src)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return
    doc = ast.get_docstring(tree)
    if doc:
        yield module, doc
    stack: list[tuple[ast.AST, str]] = [(tree, module)]
    while stack:
        node, prefix = stack.pop(0)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}"
                d = ast.get_docstring(child)
                if d:
                    yield name, d
                stack.append((child, name))


def python_sources(site: Path) -> list[tuple[str, Path, str]]:
    """(kind, path, title) of every docstring file and doc file under ``site``, sorted by path.
    kind is ``py`` (source, title = dotted module), ``doc`` (README/Markdown/reST) or ``meta``
    (dist-info METADATA long description)."""
    out: list[tuple[str, Path, str]] = []
    for root, dirs, files in os.walk(site):
        dirs.sort()
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "site-packages", "dist-packages")]
        rel = Path(root).relative_to(site)
        for f in sorted(files):
            p = Path(root) / f
            low = f.lower()
            if low.endswith(".py"):
                try:
                    if p.stat().st_size > 2_000_000:
                        continue
                except OSError:
                    continue
                parts = [*rel.parts, f[:-3]]
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                out.append(("py", p, ".".join(parts) or f[:-3]))
            elif f == "METADATA" and rel.name.endswith(".dist-info"):
                out.append(("meta", p, rel.name[: -len(".dist-info")]))
            elif low.endswith((".md", ".rst")) or low.startswith("readme"):
                out.append(("doc", p, str(rel / f)))
    return out


def metadata_body(path: Path) -> str:
    """The long description of a wheel's METADATA: the body after the first blank line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    _, _, body = text.partition("\n\n")
    return body


def default_sites() -> list[str]:
    """This Python's site-packages and, inside a virtual environment, the base interpreter's (where
    the project's dependencies live), existing folders only, without repeats."""
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    cands = [
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths(vars=base)["purelib"],
        sysconfig.get_paths(vars=base)["stdlib"],  # its site-packages subfolder is skipped when walking
    ]
    return [c for i, c in enumerate(cands) if os.path.isdir(c) and c not in cands[:i]]


# --------------------------------------------------------------------------- man pages
_ROFF_FONT = re.compile(r"\\f(\[[^\]]*\]|\(..|.)")
_ROFF_SPECIAL = re.compile(r"\\\((..)|\\\[([^\]]*)\]")
_ROFF_STRING = re.compile(r"\\\*(\[[^\]]*\]|\(..|.)")
_ROFF_SIZE = re.compile(r"\\s[-+]?\d+")
_ROFF_CHARS = {"em": "-", "en": "-", "hy": "-", "aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'",
               "bu": "", "co": "(c)", "rg": "(R)", "tm": "(TM)", "mi": "-", "pl": "+", "mu": "x"}  # fmt: skip
_TEXT_MACROS = {"B", "I", "BR", "RB", "BI", "IB", "IR", "RI", "SM", "SB", "TQ"}
_SKIP_SECTIONS = {"SYNOPSIS", "SEE ALSO", "AUTHOR", "AUTHORS", "COPYRIGHT", "REPORTING BUGS", "EXAMPLES",
                  "EXAMPLE", "FILES", "HISTORY", "VERSIONS", "COLOPHON", "LICENSE", "BUGS"}  # fmt: skip


def roff_text(line: str) -> str:
    """One roff text line as plain text: font, size and string escapes removed, special characters mapped."""
    s = _ROFF_FONT.sub("", line)
    s = _ROFF_SIZE.sub("", s)
    s = _ROFF_STRING.sub("", s)
    s = _ROFF_SPECIAL.sub(lambda m: _ROFF_CHARS.get(m.group(1) or m.group(2), " "), s)
    s = s.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "").replace("\\ ", " ").replace("\\c", "")
    s = re.sub(r"\\.", "", s)
    return s


def man_paragraphs(path: Path) -> list[str]:
    """Prose paragraphs of one (gzipped) English man page: macros dropped (their words kept for font
    macros), no-fill/example blocks and the synopsis/see-also/authors sections skipped."""
    import gzip

    try:
        with (
            gzip.open(path, "rt", encoding="utf-8", errors="replace")
            if path.suffix == ".gz"
            else open(path, encoding="utf-8", errors="replace") as f
        ):
            lines = f.read().splitlines()
    except (OSError, EOFError):
        return []
    paras: list[str] = []
    cur: list[str] = []
    skip_section = nofill = False

    def brk() -> None:
        if cur:
            paras.append(" ".join(" ".join(cur).split()))
            cur.clear()

    for line in lines:
        if line.startswith(('.\\"', "'\\\"", '\\"')):
            continue
        if line.startswith((".", "'")):
            parts = line[1:].strip().split(None, 1)
            if not parts:
                continue
            mac, rest = parts[0], (parts[1] if len(parts) > 1 else "")
            if mac in ("so",):
                return []  # a redirect to another page
            if mac in ("SH", "SS"):
                brk()
                name = roff_text(rest).strip().strip('"').upper()
                if mac == "SH":
                    skip_section = name in _SKIP_SECTIONS
                continue
            if mac in ("nf", "EX"):
                brk()
                nofill = True
                continue
            if mac in ("fi", "EE"):
                nofill = False
                continue
            if mac in _TEXT_MACROS and not (skip_section or nofill):
                cur.append(roff_text(rest.replace('"', "")))
                continue
            brk()  # PP, LP, TP, IP, sp, br, and every other request
            continue
        if skip_section or nofill:
            continue
        t = roff_text(line).strip()
        if t:
            cur.append(t)
    brk()
    return [p for p in paras if p]


def man_pages(roots: list[str]) -> list[Path]:
    """English man pages (``man1``..``man9`` folders) under ``roots``, sorted."""
    out: list[Path] = []
    for root in roots:
        for sec in sorted(Path(root).glob("man[1-9]*")):
            if sec.is_dir():
                out.extend(sorted(p for p in sec.iterdir() if p.is_file()))
    return out


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", default="/work/data/real300k", help="output BEIR folder (default /work/data/real300k)"
    )
    ap.add_argument(
        "--apt-lists", default=DEFAULT_LISTS, help="private apt lists folder with Translation-en files"
    )
    ap.add_argument(
        "--site-packages",
        action="append",
        default=None,
        help="site-packages folder(s) to read docstrings and docs from (default: this Python's and its base interpreter's purelib)",
    )
    ap.add_argument(
        "--man",
        action="append",
        default=None,
        help="man page root(s) (default /usr/share/man; English sections only)",
    )
    ap.add_argument("--n-queries", type=int, default=1000, help="held-out queries (default 1000)")
    ap.add_argument("--min-words", type=int, default=20)
    ap.add_argument("--target-words", type=int, default=45)
    ap.add_argument("--max-words", type=int, default=80)
    ap.add_argument("--min-passages", type=int, default=300_000, help="refuse to write fewer passages")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    if not 0 < args.min_words <= args.target_words <= args.max_words:
        ap.error("need 0 < --min-words <= --target-words <= --max-words")
    t0 = time.perf_counter()
    out = Path(args.out)
    seen: dict[str, str] = {}  # norm key -> id
    corpus: list[dict] = []
    n_by_source: dict[str, int] = {"debian": 0, "python-docstring": 0, "python-doc": 0, "man": 0}
    n_dups = 0

    def add(prefix: str, source: str, title: str, text: str) -> str:
        nonlocal n_dups
        key = norm_key(text)
        pid = seen.get(key)
        if pid is not None:
            n_dups += 1
            return pid
        pid = f"{prefix}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"
        seen[key] = pid
        corpus.append({"_id": pid, "title": title, "text": text, "metadata": {"source": source}})
        n_by_source[source] += 1
        return pid

    pw = (args.min_words, args.target_words, args.max_words)
    # Debian long descriptions; the short ones are query candidates (never in the collection)
    pkg_short: dict[str, str] = {}
    pkg_ids: dict[str, list[str]] = {}
    trans = ensure_translations(Path(args.apt_lists))
    for pkg, short, paras in tqdm(read_translations(trans), desc="debian", unit="pkg"):
        if pkg in pkg_short:  # an update's record of the same package: keep the first
            continue
        pkg_short[pkg] = short
        ids = [add("deb", "debian", pkg, p) for p in pack_passages(paras, *pw)]
        if ids:
            pkg_ids[pkg] = ids
    # Python docstrings and docs
    sites = args.site_packages or default_sites()
    files = [s for site in sites for s in python_sources(Path(site))]
    for kind, path, title in tqdm(files, desc="python", unit="file"):
        try:
            if kind == "py":
                for name, doc in iter_docstrings(path, title):
                    for p in pack_passages(clean_lines(doc), *pw):
                        add("py", "python-docstring", name, p)
            else:
                text = (
                    metadata_body(path)
                    if kind == "meta"
                    else path.read_text(encoding="utf-8", errors="replace")
                )
                for p in pack_passages(clean_lines(text), *pw):
                    add("py", "python-doc", title, p)
        except OSError:
            continue
    # man pages
    for path in tqdm(man_pages(args.man or ["/usr/share/man"]), desc="man", unit="page"):
        name = path.name.removesuffix(".gz")
        stem, _, sec = name.rpartition(".")
        for p in pack_passages(man_paragraphs(path), *pw):
            add("man", "man", f"{stem}({sec})", p)
    print(f"sources: {n_by_source}, {n_dups} duplicates dropped", file=sys.stderr)
    if len(corpus) < args.min_passages:
        raise SystemExit(
            f"make_real_collection: error: only {len(corpus)} passages (< --min-passages {args.min_passages}): "
            "add --site-packages folders or lower --min-words"
        )
    # queries: one per distinct short description, sampled among packages with passages
    rng = random.Random(args.seed)
    by_short: dict[str, list[str]] = {}
    for pkg in sorted(pkg_ids):
        by_short.setdefault(norm_key(pkg_short[pkg]), []).append(pkg)
    shorts = sorted(by_short)
    picked = sorted(rng.sample(shorts, min(args.n_queries, len(shorts))))
    queries: list[dict] = []
    qrels: list[tuple[str, str]] = []
    for i, key in enumerate(picked):
        qid = f"q{i:04d}"
        pkgs = by_short[key]
        queries.append({"_id": qid, "text": pkg_short[pkgs[0]], "metadata": {"packages": pkgs}})
        rel = sorted({pid for pkg in pkgs for pid in pkg_ids[pkg]})
        qrels.extend((qid, pid) for pid in rel)
    out.mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for rec in tqdm(corpus, desc="writing", unit="passage"):
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
        for rec in queries:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, pid in qrels:
            f.write(f"{qid}\t{pid}\t1\n")
    lens = sorted(len(r["text"].split()) for r in corpus)
    qlens = [len(q["text"].split()) for q in queries]
    stats = {
        "n_passages": len(corpus),
        "by_source": n_by_source,
        "duplicates_dropped": n_dups,
        "n_queries": len(queries),
        "n_qrels": len(qrels),
        "words_per_passage": {
            "mean": round(sum(lens) / len(lens), 1),
            "p5": lens[len(lens) // 20],
            "median": lens[len(lens) // 2],
            "p95": lens[len(lens) * 19 // 20],
        },
        "words_per_query_mean": round(sum(qlens) / max(len(qlens), 1), 1),
        "seed": args.seed,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(
        f"wrote {len(corpus)} passages ({n_by_source['debian']} Debian, {n_by_source['python-docstring']} "
        f"docstring, {n_by_source['python-doc']} Python doc, {n_by_source['man']} man; {n_dups} duplicates dropped), "
        f"{stats['words_per_passage']['mean']} words per passage (median {stats['words_per_passage']['median']}, "
        f"p5-p95 {stats['words_per_passage']['p5']}-{stats['words_per_passage']['p95']}), {len(queries)} queries "
        f"({stats['words_per_query_mean']} words), {len(qrels)} qrels in {stats['seconds']:.0f} s -> {out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
