"""``lsr`` entry point: parses arguments and dispatches to a subcommand module.

Only argparse is imported here; each subcommand imports what it needs (torch, numba) when it runs,
so ``lsr --help`` answers at once. Bad input raises :class:`lsr.errors.LsrError`, printed as one
line ``lsr: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS = {
    "encode": ("lsr.cli.encode", "encode a BEIR corpus or queries file into sparse vectors (JSONL)"),
    "index": ("lsr.cli.index_cmd", "build an index from vectors (JSONL) or from a corpus with --model"),
    "search": ("lsr.cli.search", "search an index with query vectors or query texts; writes a TREC run"),
    "bench": ("lsr.cli.bench", "measure per-query latency, QPS and recall against exact search"),
    "info": ("lsr.cli.info", "show what an index holds"),
    "check": ("lsr.cli.check", "verify an index: checksums and structure (exit 1 when damaged)"),
    "warmup": (
        "lsr.cli.warmup",
        "compile the numba kernels of every method and impact type once (the first build/search does it too)",
    ),
    "add": (
        "lsr.cli.living",
        "add or replace documents (vectors JSONL, or a BEIR corpus with the index's encoder); one commit",
    ),
    "delete": ("lsr.cli.living", "delete documents from an index by id"),
    "merge": ("lsr.cli.living", "merge the segments of a living index (--max-segments 1: force-merge)"),
    "serve": ("lsr.cli.serve", "serve an index over HTTP (FastAPI + uvicorn): search API and a search page"),
    "demo": (
        "lsr.cli.demo",
        "encode, index and search the bundled SciFact with the bundled model; print nDCG@10",
    ),
    "eval": (
        "lsr.cli.eval_cmd",
        "evaluate a model on a BEIR dataset: metrics, latency, BM25 and fusion baselines, report",
    ),
    "train": (
        "lsr.cli.train",
        "fine-tune an encoder (SPLADE, uniCOIL, inference-free, DyVo) on a BEIR train split; resumable",
    ),
    "export": ("lsr.cli.export", "write an encoder in another library's layout (sentence-transformers)"),
    "export-ciff": ("lsr.cli.export", "write an index as a CIFF file (for PISA, BMP, Anserini)"),
    "entities": (
        "lsr.cli.entities",
        "DyVo entity vocabularies: mine an entity store from a corpus, make a DyVo encoder, show matches",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    from lsr import __version__

    parser = argparse.ArgumentParser(
        prog="lsr",
        description="Learned sparse retrieval: encode text with SPLADE, index it, search it.",
    )
    parser.add_argument("--version", action="version", version=f"lsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Arguments are declared here (argparse only), so --help never imports a subcommand.
        _ARGS[name](p)
    return parser


def _add_device_args(p: argparse.ArgumentParser, max_tokens: bool = False) -> None:
    p.add_argument(
        "--device",
        default=None,
        help="where the model runs: auto (default: $LSR_DEVICE, else a GPU when present), cpu, cuda[:N], mps",
    )
    if max_tokens:
        p.add_argument(
            "--max-batch-tokens",
            type=int,
            default=None,
            help="cap each forward pass at this many (padded) tokens as well as --batch-size texts",
        )


THREADS_HELP = (
    "threads for encoding (torch) and the numba kernels: N or auto (default: auto = the cores not busy, "
    "cores minus the 1-minute load average, at least 1)"
)


def _add_threads(p: argparse.ArgumentParser, extra: str = "") -> None:
    from lsr.cli.common import threads_arg

    p.add_argument("--threads", type=threads_arg, default="auto", metavar="N|auto", help=THREADS_HELP + extra)


def _args_encode(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="splade-tiny",
        help="bundled name, local directory or Hugging Face id (default: splade-tiny)",
    )
    p.add_argument("--input", required=True, help="BEIR corpus or queries file (.jsonl or .jsonl.gz)")
    p.add_argument("--output", required=True, help="vectors file to write (.jsonl or .jsonl.gz)")
    p.add_argument(
        "--queries", action="store_true", help="encode as queries (query max length, query pruning)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    p.add_argument("--max-length", type=int, default=None, help="override the model's max length in tokens")
    p.add_argument("--top-k", type=int, default=None, help="keep only the k heaviest terms of each vector")
    p.add_argument(
        "--precision", choices=["float32", "bfloat16"], default=None, help="vocabulary projection precision"
    )
    _add_device_args(p, max_tokens=True)
    _add_threads(p)
    _add_ray_encode_args(p)


def _add_ray_address(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help=f"{what} on Ray: a local Ray when ADDRESS is omitted or 'local', else auto, HOST:PORT or "
        "ray://HOST:PORT (needs the 'ray' extra)",
    )


def _add_ray_encode_args(p: argparse.ArgumentParser) -> None:
    _add_ray_address(p, "encode with a pool of actors; --output is then a directory of vector parts")
    p.add_argument(
        "--actors", type=int, default=None, help="--ray: encoder actors (default: one per GPU, else cores)"
    )
    p.add_argument(
        "--threads-per-actor",
        type=int,
        default=None,
        help="--ray: torch threads per actor (default: cores / actors)",
    )
    p.add_argument(
        "--block-size",
        type=int,
        default=4096,
        help="--ray: records per block (a multiple of 256; default 4096)",
    )


def _args_index(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help="vectors JSONL (.gz ok), or a BEIR corpus with --model")
    p.add_argument("--output", required=True, help="index directory to create")
    p.add_argument("--model", default=None, help="encode a BEIR corpus on the fly with this model")
    p.add_argument("--quantization", choices=["float32", "uint16", "uint8"], default="float32")
    p.add_argument(
        "--quantizer",
        choices=["term", "global"],
        default=None,
        help="uint8/uint16 steps: global = one for all terms (default; what --shards always uses); term = "
        "one per term, set by its largest weight (for heavy-tailed weights; format version 3)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing index directory")
    p.add_argument(
        "--batch-size", type=int, default=32, help="texts per forward pass when encoding (default 32)"
    )
    p.add_argument(
        "--precision", choices=["float32", "bfloat16"], default=None, help="encoder projection precision"
    )
    _add_device_args(p, max_tokens=True)
    p.add_argument(
        "--methods",
        default="all",
        help=f"search methods the index must serve, comma-separated: {', '.join(_method_names())}, or all "
        "(default: all; each adds the parts it needs, see `lsr info`)",
    )
    p.add_argument(
        "--reorder",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="renumber documents by graph bisection (default: on when bmp or seismic is built)",
    )
    p.add_argument(
        "--bmp-block-size", type=int, default=None, help="BMP block size in documents (default 16)"
    )
    p.add_argument(
        "--seismic-n-postings",
        type=int,
        default=None,
        help="Seismic: postings kept per term, on average (default 2000)",
    )
    p.add_argument(
        "--seismic-pruning",
        choices=("global", "fixed"),
        default=None,
        help="Seismic: keep the index's heaviest n_postings x terms postings, each list at most 1.5 x "
        "n_postings (global, Seismic's default and ours), or n_postings per list (fixed)",
    )
    p.add_argument(
        "--seismic-block-size", type=int, default=None, help="Seismic: documents per block (default 10)"
    )
    p.add_argument(
        "--seismic-knn",
        type=int,
        default=None,
        help="Seismic: store each document's N nearest documents (a kNN graph, found by the index's own "
        "search) and score the neighbours of the top k at query time (query parameter knn); default "
        "0: no graph",
    )
    _add_threads(p, "; also the parallel part builds (reordering, Seismic)")
    p.add_argument(
        "--shards",
        type=int,
        default=None,
        help="build a sharded index of N shards (contiguous in build order) with a shards.json at the top",
    )
    _add_ray_encode_args(p)


def _method_names() -> tuple[str, ...]:
    """The registered search methods (lsr.index.methods: numpy only, no numba, so --help stays light)."""
    from lsr.index.methods import NAMES

    return NAMES


def _add_method_args(p: argparse.ArgumentParser) -> None:
    from lsr.index.methods import param_help

    p.add_argument("--method", default="exact", help=f"{', '.join(_method_names())} (default: exact)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"a method parameter, repeatable: {param_help()} (default, bounds)",
    )


def _args_search(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, help="index directory")
    p.add_argument(
        "--queries",
        required=True,
        help="query vectors (JSONL) or BEIR queries (text, encoded with the index's encoder)",
    )
    p.add_argument("--k", type=int, default=10)
    _add_method_args(p)
    _add_threads(p, "; also the threads the batch of queries is spread over")
    p.add_argument("--output", default="-", help="TREC run file to write (default: standard output)")
    p.add_argument("--tag", default="lsr", help="run tag, the last TREC column")
    p.add_argument(
        "--model",
        default=None,
        help="encode text queries with this model instead of the index's recorded one",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="search even if --model's settings differ from the index's encoder",
    )
    p.add_argument(
        "--filter",
        default=None,
        help='metadata filter (JSON), e.g. \'{"lang": "en", "year": {"gte": 2000}}\' (a living index)',
    )
    _add_ray_search_args(p)


def _add_ray_search_args(p: argparse.ArgumentParser) -> None:
    _add_ray_address(p, "hold the shards of a sharded index in Ray actors (one per shard and replica)")
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="--ray: actors per shard; a search survives one dying (default 1)",
    )


def _args_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True)
    p.add_argument("--queries", required=True, help="query vectors (JSONL) or BEIR queries (text)")
    p.add_argument("--k", type=int, default=10)
    _add_method_args(p)
    p.add_argument(
        "--threads", type=int, default=1, help="threads for the batch QPS run (latency is per query)"
    )
    p.add_argument(
        "--repeats", type=int, default=1, help="timed passes over the queries (median latency per query)"
    )
    p.add_argument("--warmup", type=int, default=50, help="queries run before timing (JIT and page cache)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N queries")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--model",
        default=None,
        help="encode text queries with this model instead of the index's recorded one (needed on an "
        "index built from vectors)",
    )
    p.add_argument(
        "--force", action="store_true", help="benchmark even if --model's settings differ from the index's"
    )


def _args_add(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, help="index directory (a plain index becomes a living one)")
    p.add_argument(
        "--input",
        required=True,
        help="vectors JSONL ({id, vector, metadata?, title?, text?}) or a BEIR corpus (encoded with the index's encoder)",
    )
    p.add_argument(
        "--commit-every", type=int, default=None, help="commit every N documents (default: once at the end)"
    )
    p.add_argument("--batch-size", type=int, default=256, help="texts per encoder call (BEIR corpus)")


def _args_delete(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, help="index directory")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--id", nargs="+", help="external document ids to delete")
    g.add_argument("--ids", help="file of ids to delete, one per line")


def _args_merge(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, help="index directory")
    p.add_argument(
        "--max-segments",
        type=int,
        default=None,
        help="merge down to at most N segments (default: the merge policy)",
    )


def _args_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("index", metavar="DIR", help="index directory")
    p.add_argument("--json", action="store_true", help="print the manifest summary as JSON")


def _args_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("index", metavar="DIR", help="index directory")


def _args_warmup(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quantization",
        action="append",
        choices=["float32", "uint16", "uint8"],
        help="only these impact types, repeatable (default: all three)",
    )


# commands that build or search: the first of them on a machine warms the kernels (lsr warmup);
# not the demo, a first look that uses exact search only (its timing in BENCHMARKS.md stays valid)
WARM_FIRST = {"index", "search", "bench", "serve", "eval"}


def _args_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="demo-output", help="working directory (default: ./demo-output)")
    p.add_argument("--model", default="splade-tiny")
    p.add_argument(
        "--dataset", default="scifact", help="bundled name or BEIR folder (default: bundled SciFact)"
    )
    p.add_argument("--limit", type=int, default=None, help="index only the first N documents (a quick look)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default=None)
    _add_threads(p, "; also the parallel part builds and the batch search")


def _args_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, help="index directory to serve")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (each maps the same index)"
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    _add_device_args(p)
    _add_threads(p, "; per worker: torch threads for query encoding (LSR_TORCH_THREADS) and numba threads")
    _add_ray_search_args(p)


def _args_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", help="BEIR folder, bundled name (scifact) or ir-datasets id (beir/scifact/test)"
    )
    p.add_argument("--model", default="splade-tiny", help="bundled name, local directory or Hugging Face id")
    p.add_argument("--output", help="directory for runs, report.json, report.md and plots")
    p.add_argument(
        "--methods", default=None, help="comma-separated search methods (default: every available one)"
    )
    p.add_argument("--k", type=int, default=1000, help="documents retrieved per query (default 1000)")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("DIR1", "DIR2"),
        help="compare two eval outputs with ranx's paired significance test",
    )
    p.add_argument(
        "--cache-dir", default=None, help="encoding cache (default: $LSR_CACHE_DIR or ~/.cache/lsr/eval)"
    )
    p.add_argument("--split", default="test", help="qrels split of a BEIR folder (default: test)")
    _add_threads(p, "; also the batch search (--torch-threads, when given, overrides the torch part)")
    p.add_argument("--batch-size", type=int, default=256, help="documents per encoding chunk (default 256)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default=None)
    p.add_argument(
        "--params", default=None, help='method parameters as JSON, e.g. \'{"bmp": {"alpha": 0.9}}\''
    )
    p.add_argument(
        "--bm25",
        choices=["auto", "pyserini", "bm25s", "none"],
        default="auto",
        help="BM25 baseline backend (default auto: pyserini when it can run, else bm25s)",
    )
    p.add_argument(
        "--pyserini-python",
        default=None,
        help="Python interpreter of a venv with pyserini (default: $LSR_PYSERINI_PYTHON)",
    )
    p.add_argument("--warmup", type=int, default=50, help="untimed queries before timing each method")
    p.add_argument(
        "--torch-threads", type=int, default=None, help="torch threads for encoding (default: --threads)"
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    _add_device_args(p)


def _args_train(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="splade-tiny", help="starting encoder: bundled name, directory or HF id"
    )
    p.add_argument(
        "--kind",
        default=None,
        help="build this encoder kind from --model's weights (e.g. unicoil, inference-free); default: the model's own",
    )
    p.add_argument("--data", required=True, help="BEIR folder or bundled dataset name (e.g. scifact)")
    p.add_argument("--output", required=True, help="directory for the trained model, checkpoints and logs")
    p.add_argument("--split", default="train", help="qrels split to train on (default: train)")
    p.add_argument(
        "--negatives",
        default="bm25",
        help="hard negatives: bm25, model (the starting model's top-k), none, or a TSV file (default: bm25)",
    )
    p.add_argument("--n-negatives", type=int, default=1, help="hard negatives per query and step (default 1)")
    p.add_argument(
        "--negatives-depth", type=int, default=50, help="sample negatives from this top-k (default 50)"
    )
    p.add_argument(
        "--teacher",
        default=None,
        help="teacher scores: 'fusion' (BM25 + the starting model, min-max fused over the train queries), "
        "a TSV qid docid score, or JSON {qid: {docid: score}}",
    )
    p.add_argument(
        "--temperature",
        default="learn",
        help="student score temperature: a number, calibrate (minimises the starting loss) or learn "
        "(log tau trained from the calibrated value; default: learn)",
    )
    p.add_argument(
        "--no-false-negative-mask",
        action="store_true",
        help="contrastive: let in-batch documents relevant to a query count as its negatives",
    )
    p.add_argument("--loss", default="contrastive", choices=["contrastive", "margin_mse", "kl"])
    p.add_argument("--no-in-batch", action="store_true", help="contrastive: no in-batch negatives")
    p.add_argument("--batch-size", type=int, default=8, help="queries per step (default 8)")
    p.add_argument(
        "--steps", type=int, default=None, help="total steps (default: --epochs passes over the pairs)"
    )
    p.add_argument(
        "--epochs", type=float, default=1.0, help="passes over the (query, positive) pairs (default 1)"
    )
    p.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (default 5e-5)")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear learning-rate warm-up (default 0)")
    p.add_argument(
        "--embedding-lr-scale",
        type=float,
        default=1.0,
        help="learning-rate factor of the tied embedding/decoder (0 freezes it; default 1)",
    )
    p.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clipping (0: off; default 1)")
    p.add_argument("--reg", default="flops", choices=["flops", "l1", "idf_flops", "none"])
    p.add_argument("--lambda-q", type=float, default=1e-3, help="query regulariser weight (default 1e-3)")
    p.add_argument("--lambda-d", type=float, default=1e-3, help="document regulariser weight (default 1e-3)")
    p.add_argument(
        "--reg-warmup-steps",
        type=int,
        default=None,
        help="quadratic warm-up of the regularisers (default: a third of the steps)",
    )
    p.add_argument(
        "--target-doc-nnz",
        default="start",
        help="adapt lambda_d to hold documents at N non-zeros: a number, start (the starting model's) "
        "or none (fixed lambda_d; default: start)",
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)"
    )
    r = p.add_mutually_exclusive_group()
    r.add_argument("--no-resume", action="store_true", help="start over even if --output has checkpoints")
    r.add_argument(
        "--resume", action="store_true", help="resume the run in --output even if its settings differ"
    )
    p.add_argument("--seed", type=int, default=42)
    _add_threads(p)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument(
        "--dev-split", default=None, help="qrels split to select checkpoints on (default: dev when present)"
    )
    p.add_argument(
        "--dev-fraction",
        type=float,
        default=0.1,
        help="without a dev split, hold out this fraction of the train queries as dev (0: none; default 0.1)",
    )
    p.add_argument(
        "--dev-candidates",
        type=int,
        default=10,
        help="dev search over the dev qrels documents + BM25 top-N of each dev query (0: the whole "
        "corpus; default 10)",
    )
    p.add_argument(
        "--learn-query-weights", action="store_true", help="inference-free: learn the query weight table too"
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="evaluate on dev every N steps (default: 4 times after step 0; 0: at the start and end only)",
    )
    p.add_argument(
        "--doc-max-length", type=int, default=None, help="override the document max length in tokens"
    )
    p.add_argument(
        "--query-max-length", type=int, default=None, help="override the query max length in tokens"
    )


def _args_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", required=True, choices=["sentence-transformers"], help="layout to write")
    p.add_argument(
        "model", metavar="DIR", help="encoder: directory (e.g. `lsr train` output) or bundled name"
    )
    p.add_argument("output", metavar="OUT", help="directory to write (must not exist or be empty)")


def _args_export_ciff(p: argparse.ArgumentParser) -> None:
    p.add_argument("index", metavar="DIR", help="index directory")
    p.add_argument("output", metavar="OUT", help="CIFF file to write")
    p.add_argument(
        "--bits",
        type=int,
        choices=[8, 16],
        default=8,
        help="quantize a float32 index to this many bits (default 8)",
    )


def _args_entities(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="entities_command", metavar="SUBCOMMAND")
    b = sub.add_parser(
        "build",
        help="mine recurring multi-word terms and names of a corpus into an entity store",
        description="Mine recurring multi-word terms and names of a BEIR corpus into an entity store "
        "(entities.jsonl + entity_embeddings.npy), embedded with the model's input word-piece embeddings.",
    )
    b.add_argument("--corpus", required=True, help="BEIR corpus file, BEIR folder or bundled name (scifact)")
    b.add_argument("--model", default="splade-tiny", help="model whose input embeddings embed the names")
    b.add_argument("--output", required=True, help="entity store directory to write")
    b.add_argument("--max-entities", type=int, default=20_000, help="keep at most N entities (default 20000)")
    b.add_argument("--min-df", type=int, default=3, help="documents a term must occur in (default 3)")
    b.add_argument("--max-ngram", type=int, default=4, help="longest multi-word term in words (default 4)")
    b.add_argument("--no-names", action="store_true", help="skip single acronym-like names (HIV, BRCA1)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    d = sub.add_parser(
        "dyvo",
        help="save a DyVo encoder: a SPLADE model + an entity store (untrained head)",
        description="Save a DyVo encoder directory from a SPLADE model and an entity store; use it as "
        "--model in encode, index, search and eval.",
    )
    d.add_argument("--model", default="splade-tiny", help="SPLADE model: bundled name, directory or hub id")
    d.add_argument("--entities", required=True, help="entity store directory")
    d.add_argument("--output", required=True, help="encoder directory to write")
    d.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    m = sub.add_parser("match", help="print the candidate entities of texts (JSON lines)")
    m.add_argument("--entities", required=True, help="entity store directory")
    m.add_argument("texts", nargs="+", metavar="TEXT")
    for q in (d, m):
        q.add_argument("--top-n", type=int, default=32, help="candidate entities per text (default 32)")
        q.add_argument("--no-fuzzy", action="store_true", help="exact name/alias matches only")
        q.add_argument("--max-edits", type=int, default=1, choices=[1, 2], help="fuzzy edits per word")
        q.add_argument(
            "--bm25", action="store_true", help="add BM25 hits over names and descriptions (needs bm25s)"
        )


_ARGS = {
    "train": _args_train,
    "encode": _args_encode,
    "index": _args_index,
    "search": _args_search,
    "bench": _args_bench,
    "info": _args_info,
    "check": _args_check,
    "warmup": _args_warmup,
    "add": _args_add,
    "delete": _args_delete,
    "merge": _args_merge,
    "serve": _args_serve,
    "demo": _args_demo,
    "eval": _args_eval,
    "entities": _args_entities,
    "export": _args_export,
    "export-ciff": _args_export_ciff,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from lsr.errors import LsrError

    try:
        if args.command in WARM_FIRST:
            from lsr.cli.warmup import first_run

            first_run(args)
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.run(args) or 0)
    except LsrError as e:
        print(f"lsr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lsr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
