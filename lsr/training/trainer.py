"""``lsr train``: fine-tune any trainable encoder (SPLADE, uniCOIL, inference-free SPLADE, DyVo).

An encoder is trainable when it has ``train_module()`` (the ``torch.nn.Module`` to optimise),
``forward_train(texts, "query" | "document")`` (differentiable dense (batch, vocab) weights whose dot
product is the score) and ``save(path)``. One step takes ``batch_size`` (query, positive) pairs, adds
``n_negatives`` hard negatives per query, scores every query against every document of the batch, and
minimises the ranking loss (scores divided by a calibrated or learned temperature, in-batch false
negatives masked) plus the query and document sparsity regularisers, the query weight ramped up
quadratically over ``reg_warmup_steps``, the document weight adapted to ``target_doc_nnz``. Dev
nDCG@10 is measured at step 0 and every ``eval_every`` steps; the best step is the output.

Reproducibility: the pairs of step ``s`` and its negatives are drawn from generators seeded by
``(seed, epoch)`` and ``(seed, s)``, and torch's generator is reseeded from ``(seed, s)`` before the
step (dropout), so a run resumed from a checkpoint makes exactly the steps an uninterrupted run makes.
Checkpoints (``output/checkpoints/step-NNNNNN``: the encoder, the optimizer state, the step and the
controller/temperature/best state) are written atomically every ``checkpoint_every`` steps; the newest
``keep_checkpoints`` are kept, and the best dev step separately in ``output/best``. A checkpoint of a
run with other settings is not resumed unless ``resume`` is True.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lsr.errors import LsrError
from lsr.losses import LOSSES, REGULARIZERS

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.pt"
LOG_FILE = "train_log.jsonl"
REPORT_FILE = "train_report.json"
BEST_DIR = "best"  # the best dev checkpoint's encoder (copied to the output at the end)
NEGATIVES_FILE = "negatives.json"
TEACHER_FILE = "teacher.json"
DEV_CANDIDATES_FILE = "dev_candidates.json"
CALIBRATION_BATCHES = 4  # batches of step 0 the temperature is calibrated on
TAU_LR = 1e-2  # learning rate of log tau when the temperature is learned
NNZ_GAIN = 1.0  # target_doc_nnz controller: log boost += gain * relative error, per step
NNZ_EMA = 0.8  # smoothing of the batch non-zeros the controller reads
MAX_BOOST = float(np.log(1000.0))  # lambda_d stays within [lambda_d, 1000 x lambda_d]
NNZ_TOLERANCE = 0.04  # best-checkpoint selection: dev document non-zeros at most 4% above the target


@dataclass
class TrainConfig:
    """Every setting of a training run (recorded in ``train_report.json`` and each checkpoint).

    The defaults are the recipe of ``lsr train --model M --data D --output X`` (BENCHMARKS.md): InfoNCE
    at a temperature calibrated on the starting model then learned, in-batch false negatives
    masked, one BM25 negative per query, query FLOPS ramped up over the first third of the steps,
    document FLOPS raised above lambda_d as needed to hold the starting model's document
    non-zeros, 10% of the train queries held out as dev, and the best dev nDCG@10 checkpoint
    (within the non-zeros target) written as the output.
    """

    model: str
    data: str
    output: str
    kind: str | None = (
        None  # encoder kind to build from ``model`` (e.g. "unicoil" from a BERT/MLM checkpoint)
    )
    split: str = "train"
    negatives: str = "bm25"  # "bm25", "model", "none" or a TSV file of ranked (query-id, doc-id)
    n_negatives: int = 1  # hard negatives per query and step
    negatives_depth: int = 50  # sample negatives from this many top-ranked non-relevant documents
    teacher: str | None = None  # teacher scores file, or "fusion" (BM25 + the starting model, min-max)
    teacher_depth: int = 100  # fusion teacher: fuse each run's top-k (the harness's min-max sum)
    loss: str = "contrastive"
    in_batch: bool = True  # contrastive: other queries' documents are negatives too
    false_negatives_mask: bool = True  # contrastive: documents relevant to a query are not its negatives
    # the student's score temperature: a number, "calibrate" (the value minimising the mean loss of
    # the starting model over the first batches) or "learn" (log tau trained from the calibrated value)
    temperature: float | str = "learn"
    teacher_temperature: float | None = None  # kl: the teacher's softmax temperature (default: auto)
    batch_size: int = 8
    steps: int | None = None  # total steps (default: ``epochs`` passes over the pairs)
    epochs: float = 1.0
    lr: float = 5e-5
    embedding_lr_scale: float = 1.0  # SPLADE: lr factor of the tied embedding/decoder (0 freezes it)
    weight_decay: float = 0.01
    warmup_steps: int = 0
    grad_clip: float = 1.0
    reg: str = "flops"  # "flops", "l1", "idf_flops" (documents of inference-free models) or "none"
    lambda_q: float = 1e-3
    lambda_d: float = 1e-3  # the floor when target_doc_nnz adapts it (x up to 1000 above the target)
    reg_warmup_steps: int | None = None  # quadratic ramp of the regularisers (default: a third of the steps)
    # hold documents at this many non-zeros by adapting lambda_d: a number, "start" (the starting
    # model's, measured with dropout off on the first batches) or None (lambda_d fixed)
    target_doc_nnz: float | str | None = "start"
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    resume: bool | None = None  # None: resume only a run with the same settings; True: force; False: restart
    seed: int = 42
    device: str = "auto"
    threads: int | None = None  # torch CPU threads (default: torch's)
    dev_split: str | None = None  # a qrels split to select checkpoints on (default: "dev" when present)
    dev_fraction: float = 0.1  # else hold out this fraction of the train queries (0: no dev set)
    dev_candidates: int = 10  # dev search runs over dev qrels docs + BM25 top-k of dev queries (0: all)
    learn_query_weights: bool = False  # inference-free: learn the query weight table too
    eval_every: int | None = None  # dev evaluation every N steps (default: 3 after step 0; 0: at the end)
    encoder_options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise LsrError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.reg not in REGULARIZERS:
            raise LsrError(f"reg must be one of {', '.join(REGULARIZERS)}, not {self.reg!r}")
        if self.loss in ("margin_mse", "kl") and not self.teacher:
            raise LsrError(f"loss {self.loss!r} distils teacher scores: pass a teacher file or 'fusion'")
        if self.teacher and self.loss == "contrastive":
            raise LsrError("a teacher is distilled by --loss margin_mse or kl, not contrastive")
        if self.loss in ("margin_mse", "kl") and self.n_negatives < 1:
            raise LsrError(f"loss {self.loss!r} needs n_negatives >= 1")
        if self.loss in ("margin_mse", "kl") and self.negatives == "none":
            raise LsrError(f"loss {self.loss!r} needs hard negatives (negatives must not be 'none')")
        for name in (
            "batch_size",
            "checkpoint_every",
            "keep_checkpoints",
            "negatives_depth",
            "teacher_depth",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise LsrError(f"{name} must be a positive integer, got {v!r}")
        for name in ("n_negatives", "warmup_steps", "reg_warmup_steps", "eval_every", "dev_candidates"):
            v = getattr(self, name)
            if v is None and name in ("reg_warmup_steps", "eval_every"):
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise LsrError(f"{name} must be an integer >= 0, got {v!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise LsrError(f"steps must be a positive integer, got {self.steps!r}")
        for name in ("lr", "epochs"):
            if not getattr(self, name) > 0:
                raise LsrError(f"{name} must be > 0")
        if isinstance(self.temperature, str):
            if self.temperature not in ("calibrate", "learn"):
                raise LsrError(
                    f"temperature must be a number, 'calibrate' or 'learn', not {self.temperature!r}"
                )
        elif not self.temperature > 0:
            raise LsrError("temperature must be > 0")
        if self.teacher_temperature is not None and not self.teacher_temperature > 0:
            raise LsrError("teacher_temperature must be > 0")
        if isinstance(self.target_doc_nnz, str):
            if self.target_doc_nnz != "start":
                raise LsrError(
                    f"target_doc_nnz must be a number, 'start' or None, not {self.target_doc_nnz!r}"
                )
        elif self.target_doc_nnz is not None and not self.target_doc_nnz > 0:
            raise LsrError("target_doc_nnz must be > 0")
        for name in ("lambda_q", "lambda_d", "weight_decay", "grad_clip", "embedding_lr_scale"):
            if getattr(self, name) < 0:
                raise LsrError(f"{name} must be >= 0")
        if not 0 <= self.dev_fraction < 1:
            raise LsrError(f"dev_fraction must be in [0, 1), got {self.dev_fraction}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise LsrError(f"threads must be a positive integer, got {self.threads!r}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise LsrError(f"device must be 'auto', 'cpu' or 'cuda[:N]', not {self.device!r}")


# settings that may change between an interrupted run and its resumption without changing the run
RESUMABLE_CHANGES = ("output", "resume", "device", "threads")


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of the settings that differ between a checkpoint's config and the current one (sorted)."""
    keys = (set(saved) | set(current)) - set(RESUMABLE_CHANGES)
    return sorted(k for k in keys if saved.get(k) != current.get(k))


def pick_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a CUDA device is present, else ``"cpu"``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LsrError(f"device {device!r}: no CUDA device is available")
    return device


def latest_checkpoint(output: str) -> str | None:
    """The newest complete checkpoint directory under ``output``, or None."""
    root = os.path.join(output, CHECKPOINTS)
    if not os.path.isdir(root):
        return None
    done = sorted(
        d
        for d in os.listdir(root)
        if d.startswith("step-") and os.path.isfile(os.path.join(root, d, STATE_FILE))
    )
    return os.path.join(root, done[-1]) if done else None


class Trainer:
    """Runs one :class:`TrainConfig`; :meth:`run` returns the report (also written to the output)."""

    def __init__(self, config: TrainConfig, show_progress: bool = False) -> None:
        config.check()
        self.cfg = config
        self.show_progress = show_progress

    # -- setup -----------------------------------------------------------------------------------
    def _load_encoder(self, path: str) -> Any:
        from lsr.encoders.base import load_encoder

        opts = dict(self.cfg.encoder_options)
        opts.setdefault("device", "cpu")  # loaded on the CPU; training moves it to its --device itself
        if self.cfg.kind and path == self.cfg.model:
            opts["kind"] = self.cfg.kind
        enc = load_encoder(path, **opts)
        for name in ("train_module", "forward_train", "save"):
            if not hasattr(enc, name):
                raise LsrError(f"encoder kind {enc.kind!r} cannot be trained (no {name}())")
        return enc

    def _pairs_order(self, n_pairs: int, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.cfg.seed, epoch]).permutation(n_pairs)

    def _batch(self, step: int, steps_per_epoch: int, n_pairs: int) -> np.ndarray:
        """Pair indices of ``step``: consecutive slices of each epoch's permutation (a short last batch
        wraps into the next epoch's order so every step has ``batch_size`` pairs)."""
        bs = self.cfg.batch_size
        start = step * bs
        out = []
        while len(out) < bs:
            epoch, pos = divmod(start + len(out), n_pairs)
            order = self._pairs_order(n_pairs, epoch)
            take = min(bs - len(out), n_pairs - pos)
            out.extend(order[pos : pos + take].tolist())
        return np.array(out)

    # -- the run ---------------------------------------------------------------------------------
    def _resume_point(self) -> str | None:
        """The checkpoint to resume from, or None to start over (clearing the old run's state).

        Refuses (LsrError) when ``output`` holds a run with other settings, unless ``resume`` is True.
        """
        import torch

        cfg = self.cfg
        found = latest_checkpoint(cfg.output) if cfg.resume is not False else None
        if found is not None and cfg.resume is None:
            state = torch.load(os.path.join(found, STATE_FILE), map_location="cpu", weights_only=False)
            diff = changed_settings(state.get("config", {}), asdict(cfg))
            if diff:
                raise LsrError(
                    f"{cfg.output} holds a run with other settings ({', '.join(diff)}): pass --resume to "
                    "continue it anyway, --no-resume to start over, or another --output"
                )
        if found is None:  # a fresh run: nothing of an older one may leak into it
            for name in (CHECKPOINTS, BEST_DIR):
                shutil.rmtree(os.path.join(cfg.output, name), ignore_errors=True)
            for name in (LOG_FILE, NEGATIVES_FILE, TEACHER_FILE, DEV_CANDIDATES_FILE):
                if os.path.isfile(os.path.join(cfg.output, name)):
                    os.remove(os.path.join(cfg.output, name))
        return found

    def run(self) -> dict[str, Any]:
        import torch

        from lsr.losses import (
            bm25_idf,
            calibrate_temperature,
            contrastive,
            contrastive_scores,
            document_regularizer,
            false_negative_mask,
            idf_flops_weights,
            kl_distillation,
            linear_schedule,
            margin_mse,
            own_scores,
            regularizer,
            warmup_factor,
        )
        from lsr.training.data import (
            dev_candidates,
            evaluate,
            fusion_teacher,
            load_train_data,
            mine_negatives,
            read_teacher,
        )

        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        os.makedirs(cfg.output, exist_ok=True)
        device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        t_start = time.perf_counter()

        resume_from = self._resume_point()
        state: dict[str, Any] = {}
        if resume_from:
            state = torch.load(os.path.join(resume_from, STATE_FILE), map_location=device, weights_only=False)
        encoder = self._load_encoder(resume_from or cfg.model)
        module = encoder.train_module().to(device)
        dev_split = cfg.dev_split
        if dev_split is None and cfg.dev_fraction > 0 and cfg.split != "dev" and has_split(cfg.data, "dev"):
            dev_split = "dev"  # the data's own dev split beats holding out train queries
        data = load_train_data(
            cfg.data, cfg.split, dev_split, 0.0 if dev_split else cfg.dev_fraction, cfg.seed
        )
        n_pairs = len(data.pairs)
        steps_per_epoch = max(1, -(-n_pairs // cfg.batch_size))
        total = cfg.steps or max(1, round(cfg.epochs * steps_per_epoch))
        eval_every = cfg.eval_every if cfg.eval_every is not None else max(1, -(-total // 4))
        reg_warmup = cfg.reg_warmup_steps if cfg.reg_warmup_steps is not None else total // 3

        def cached(name: str, make: Any) -> Any:
            """JSON artefact of the run in ``output``: reused on resume (the exact lists the run used)."""
            path = os.path.join(cfg.output, name)
            if resume_from and os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    return json.load(f)
            obj = make()
            with open(path, "w", encoding="utf-8") as f:
                json.dump(obj, f)
            return obj

        negatives = cached(
            NEGATIVES_FILE,
            lambda: mine_negatives(cfg.negatives, data, encoder, cfg.negatives_depth, self.show_progress),
        )
        teacher = None
        if cfg.teacher == "fusion":
            teacher = cached(
                TEACHER_FILE, lambda: fusion_teacher(encoder, data, cfg.teacher_depth, self.show_progress)
            )
        elif cfg.teacher:
            teacher = read_teacher(cfg.teacher)
        dev_corpus = data.corpus
        if data.dev_qrels and cfg.dev_candidates:
            ids = cached(DEV_CANDIDATES_FILE, lambda: dev_candidates(data, encoder, cfg.dev_candidates))
            dev_corpus = {d: data.corpus[d] for d in ids}
        if teacher is not None:  # distillation needs a teacher score for every candidate
            negatives = {q: [d for d in ds if d in teacher.get(q, {})] for q, ds in negatives.items()}
            kept = [(q, p) for q, p in data.pairs if p in teacher.get(q, {})]
            if not kept:
                raise LsrError(f"{cfg.teacher}: no teacher score for any (query, positive) pair")
            data.pairs = kept
            n_pairs = len(kept)
        if cfg.n_negatives and cfg.negatives != "none":
            usable = [(q, p) for q, p in data.pairs if len(negatives.get(q, ())) >= cfg.n_negatives]
            if not usable:
                raise LsrError(
                    "no training query has enough hard negatives; lower n_negatives or negatives_depth"
                )
            data.pairs = usable
            n_pairs = len(usable)
        n_neg = cfg.n_negatives if cfg.negatives != "none" else 0
        per = 1 + n_neg
        prepare = getattr(encoder, "prepare_training", None)
        if prepare is not None:  # e.g. the inference-free model's query weight table
            prepare(list(data.corpus.values()), learn_table=cfg.learn_query_weights)
            module = encoder.train_module().to(device)

        idf_w = None
        if cfg.reg == "idf_flops":
            idf = getattr(encoder, "idf", None)
            if idf is None:  # document frequencies of the training corpus over the word pieces
                from lsr.training.data import bm25_vectors

                docs, _ = bm25_vectors(encoder.tokenizer, list(data.corpus.values()))
                df = np.bincount(docs.indices, minlength=len(encoder.vocab)).astype(np.float64)
                idf = bm25_idf(torch.tensor(df), len(docs)).float()
            idf_w = idf_flops_weights(torch.as_tensor(np.asarray(idf), dtype=torch.float32)).to(device)

        def batch_of(step: int) -> tuple[list[str], list[str]]:
            """Query ids and document ids (positive then negatives per query) of ``step``."""
            rng = np.random.default_rng([cfg.seed, 1, step])
            idx = self._batch(step, steps_per_epoch, n_pairs)
            qids = [data.pairs[i][0] for i in idx]
            doc_ids: list[str] = []
            for i in idx:
                q, p = data.pairs[i]
                doc_ids.append(p)
                if n_neg:
                    pool = negatives[q][: cfg.negatives_depth]
                    doc_ids.extend(pool[j] for j in rng.choice(len(pool), n_neg, replace=False))
            return qids, doc_ids

        def teacher_scores(qids: list[str], doc_ids: list[str]) -> Any:
            return torch.tensor(
                [[teacher[q][d] for d in doc_ids[j * per : (j + 1) * per]] for j, q in enumerate(qids)],  # type: ignore[index]
                dtype=torch.float32,
                device=device,
            )

        def fn_mask(qids: list[str], doc_ids: list[str]) -> Any:
            if not cfg.false_negatives_mask:
                return None
            return false_negative_mask(qids, doc_ids, data.relevant, per, cfg.in_batch).to(device)

        # -- step 0: calibrate the temperature (and teacher scale), measure the starting non-zeros ----
        calib = state.get("calibration")
        if calib is None:
            calib = self._calibrate(
                encoder, module, data, batch_of, fn_mask, teacher_scores, total, per,
                calibrate_temperature, contrastive_scores, own_scores,
            )  # fmt: skip
        tau0 = calib["temperature"]
        log_tau = None
        if cfg.temperature == "learn":
            log_tau = torch.nn.Parameter(torch.tensor(float(np.log(tau0)), device=device))
            if "log_tau" in state:
                log_tau.data.fill_(float(state["log_tau"]))
        target_nnz = calib.get("target_doc_nnz")
        boost = float(state.get("nnz_boost", 0.0))  # log of lambda_d's factor over cfg.lambda_d
        nnz_ema = state.get("nnz_ema")

        params = [p for p in module.parameters() if p.requires_grad]
        emb = self._embedding_params(module)
        if cfg.embedding_lr_scale == 0:
            for p in emb:
                p.requires_grad_(False)
            params = [p for p in params if p.requires_grad]
        slow = [p for p in params if any(p is e for e in emb)] if cfg.embedding_lr_scale != 1 else []
        rest = [p for p in params if not any(p is e for e in slow)]
        groups = [
            {"params": [p for p in rest if p.dim() > 1], "weight_decay": cfg.weight_decay, "lr": cfg.lr},
            {"params": [p for p in rest if p.dim() <= 1], "weight_decay": 0.0, "lr": cfg.lr},
        ]
        if slow:
            groups.append(
                {"params": slow, "weight_decay": cfg.weight_decay, "lr": cfg.lr * cfg.embedding_lr_scale}
            )
        if log_tau is not None:
            groups.append({"params": [log_tau], "weight_decay": 0.0, "lr": TAU_LR})
        base_lrs = [g["lr"] for g in groups]
        opt = torch.optim.AdamW(groups, lr=cfg.lr)
        clipped = [p for g in groups for p in g["params"] if p is not log_tau]
        step = 0
        if resume_from:
            opt.load_state_dict(state["optimizer"])
            step = int(state["step"])
            for group, lr in zip(opt.param_groups, base_lrs, strict=True):  # the scheduler recomputes it
                group["lr"] = lr
                group.pop("initial_lr", None)
        n_sched = len(groups) - (1 if log_tau is not None else 0)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            [lambda s: linear_schedule(s, cfg.warmup_steps, total)] * n_sched
            + ([lambda s: 1.0] if log_tau is not None else []),
            last_epoch=-1,
        )
        with warnings.catch_warnings():  # replaying the schedule without optimizer steps is intended
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(step):  # the schedule is a pure function of the step
                sched.step()

        log_path = os.path.join(cfg.output, LOG_FILE)
        evals: list[dict[str, Any]] = []
        if resume_from and os.path.isfile(log_path):  # the dev evaluations made before the interruption
            with open(log_path, encoding="utf-8") as f:
                evals = [r["eval"] for r in map(json.loads, f) if "eval" in r and r["eval"]["step"] <= step]
        log = open(log_path, "a", encoding="utf-8")
        best = state.get("best")
        best_dir = os.path.join(cfg.output, BEST_DIR)

        def dev_eval() -> None:
            nonlocal best
            res = self._evaluate(encoder, module, dev_corpus, data, step, log, evaluate)
            evals.append(res)
            # with a non-zeros target, a step whose dev documents overshoot it is not eligible
            # (the target is converted to the dev documents: x their step-0 / the calibration non-zeros)
            within = True
            if target_nnz and step > 0 and evals[0]["step"] == 0:
                dev_target = target_nnz * evals[0]["doc_nnz"] / calib["doc_nnz_dropout_off"]
                within = res["doc_nnz"] <= dev_target * (1 + NNZ_TOLERANCE)
            res["eligible"] = bool(within)
            if within and (best is None or res["ndcg@10"] > best["ndcg@10"]):
                best = {"step": step, "ndcg@10": res["ndcg@10"], "doc_nnz": res["doc_nnz"]}
                tmp = best_dir + ".tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                encoder.save(tmp)
                shutil.rmtree(best_dir, ignore_errors=True)
                os.replace(tmp, best_dir)

        if data.dev_qrels and step == 0 and not evals:
            dev_eval()  # the starting model: the output if training never beats it
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=step, desc="training", unit="step")
        module.train()
        last: dict[str, float] = {}
        try:
            while step < total:
                torch.manual_seed(cfg.seed * 1_000_003 + step)
                qids, doc_ids = batch_of(step)
                q_reps = encoder.forward_train([data.queries[q] for q in qids], "query")
                d_reps = encoder.forward_train([data.corpus[d] for d in doc_ids], "document")
                tau = log_tau.exp() if log_tau is not None else tau0
                mask = None
                if cfg.loss == "contrastive":
                    mask = fn_mask(qids, doc_ids)
                    rank_loss = contrastive(q_reps, d_reps, per, cfg.in_batch, tau, mask)
                else:
                    t = teacher_scores(qids, doc_ids)
                    s = own_scores(q_reps, d_reps, per)
                    rank_loss = (
                        margin_mse(s, t * calib["teacher_scale"])
                        if cfg.loss == "margin_mse"
                        else kl_distillation(s, t, tau, calib["teacher_temperature"])
                    )
                ramp = warmup_factor(step, reg_warmup)
                reg_q = (
                    regularizer("flops" if cfg.reg == "idf_flops" else cfg.reg, q_reps)
                    if q_reps.requires_grad
                    else q_reps.new_zeros(())
                )
                reg_d = document_regularizer(cfg.reg, d_reps, per, idf_w)
                # with a target, lambda_d is the controller's (no ramp: lambda_d x exp(boost) from step 0)
                w_d = cfg.lambda_d * float(np.exp(boost)) if target_nnz else ramp * cfg.lambda_d
                loss = rank_loss + ramp * cfg.lambda_q * reg_q + w_d * reg_d
                opt.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = (
                    float(torch.nn.utils.clip_grad_norm_(clipped, cfg.grad_clip))
                    if cfg.grad_clip > 0
                    else float(torch.nn.utils.clip_grad_norm_(clipped, float("inf")))
                )
                opt.step()
                sched.step()
                step += 1
                with torch.no_grad():
                    d_nnz = float((d_reps > 0).sum(dim=1).float().mean())
                    last = {
                        "loss": float(loss),
                        "rank_loss": float(rank_loss),
                        "reg_q": float(reg_q),
                        "reg_d": float(reg_d),
                        "q_nnz": float((q_reps > 0).sum(dim=1).float().mean()),
                        "d_nnz": d_nnz,  # of this batch, dropout on (training mode)
                        "d_nnz_est": d_nnz * calib["nnz_ratio"],  # estimate with dropout off
                        "temperature": float(tau.detach()) if log_tau is not None else float(tau),
                        "lambda_d": w_d,
                        "lambda_q": ramp * cfg.lambda_q,
                        "grad_norm": grad_norm,  # before clipping
                        "grad_clip": cfg.grad_clip,
                        "masked": int(mask.sum()) if mask is not None else 0,
                        "lr": float(sched.get_last_lr()[0]),
                    }
                if target_nnz:  # multiplicative controller on the smoothed dropout-off estimate
                    est = last["d_nnz_est"]
                    nnz_ema = est if nnz_ema is None else NNZ_EMA * nnz_ema + (1 - NNZ_EMA) * est
                    err = (nnz_ema - target_nnz) / target_nnz
                    # integral control of log lambda_d, floored at the configured lambda_d: below the
                    # target the regulariser falls back to lambda_d, it never switches off (no windup)
                    boost = float(np.clip(boost + NNZ_GAIN * err, 0.0, MAX_BOOST))
                log.write(json.dumps({"step": step, **last, "seconds": time.perf_counter() - t_start}) + "\n")
                log.flush()
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{last['loss']:.3f}", q_nnz=f"{last['q_nnz']:.0f}", d_nnz=f"{last['d_nnz']:.0f}"
                    )
                    bar.update(1)
                if data.dev_qrels and ((eval_every and step % eval_every == 0) or step == total):
                    dev_eval()
                if step % cfg.checkpoint_every == 0 or step == total:
                    extra = {
                        "calibration": calib,
                        "nnz_boost": boost,
                        "nnz_ema": nnz_ema,
                        "best": best,
                    }
                    if log_tau is not None:
                        extra["log_tau"] = float(log_tau.detach())
                    self._checkpoint(encoder, opt, step, extra)
        finally:
            if bar is not None:
                bar.close()
        if data.dev_qrels and (not evals or evals[-1]["step"] != step):
            dev_eval()
        log.close()
        module.eval()
        if hasattr(encoder, "refresh"):
            encoder.refresh()
        if best is not None and os.path.isdir(best_dir):  # the output is the best dev checkpoint
            for name in os.listdir(best_dir):
                shutil.copy2(os.path.join(best_dir, name), os.path.join(cfg.output, name))
        else:
            encoder.save(cfg.output)
        report = {
            "config": asdict(cfg),
            "device": device,
            "steps": step,
            "pairs": n_pairs,
            "steps_per_epoch": steps_per_epoch,
            "eval_every": eval_every,
            "reg_warmup_steps": reg_warmup,
            "resumed_from": resume_from,
            "calibration": calib,
            "temperature": float(log_tau.detach().exp()) if log_tau is not None else tau0,
            "lambda_d_final": cfg.lambda_d * float(np.exp(boost)) if target_nnz else cfg.lambda_d,
            "last": last,
            "dev": evals,
            "dev_set": {
                "queries": len(data.dev_queries),
                "documents": len(dev_corpus),
                "candidates": (
                    f"dev qrels documents + BM25 top-{cfg.dev_candidates} of each dev query"
                    if dev_corpus is not data.corpus
                    else "the whole corpus"
                ),
                "split": dev_split or (f"{cfg.dev_fraction} of {cfg.split}" if data.dev_qrels else None),
            },
            "best": best,
            "output_step": best["step"] if best is not None else step,
            "nnz_note": "train-batch non-zeros (d_nnz, q_nnz) are measured with dropout on; d_nnz_est "
            "scales them by the dropout-off/on ratio measured at step 0; dev doc_nnz is dropout off",
            "seconds": time.perf_counter() - t_start,
            "encoder": encoder.config(),
        }
        with open(os.path.join(cfg.output, REPORT_FILE), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        return report

    @staticmethod
    def _embedding_params(module: Any) -> list[Any]:
        """The tied input embedding / vocabulary decoder weights of a masked LM (empty if none)."""
        out = []
        for name in ("get_input_embeddings", "get_output_embeddings"):
            get = getattr(module, name, None)
            m = get() if get is not None else None
            w = getattr(m, "weight", None)
            if w is not None and not any(w is o for o in out):
                out.append(w)
        return out

    def _calibrate(
        self,
        encoder: Any,
        module: Any,
        data: Any,
        batch_of: Any,
        fn_mask: Any,
        teacher_scores: Any,
        total: int,
        per: int,
        calibrate_temperature: Any,
        contrastive_scores: Any,
        own_scores: Any,
    ) -> dict[str, Any]:
        """Step 0: on the first ``CALIBRATION_BATCHES`` batches, with the starting weights and no
        gradient, find the temperature that minimises the mean contrastive loss (or use the given
        one), the teacher's scale (margin_mse: least squares of student on teacher margins) or
        temperature (kl: minimising the KL), and the documents' non-zeros with dropout on (as
        training sees them) and off (as inference does)."""
        import torch

        cfg = self.cfg
        batches, on, off, pairs = [], [], [], []
        torch.manual_seed(cfg.seed * 1_000_003 - 1)
        for b in range(min(CALIBRATION_BATCHES, total)):
            qids, doc_ids = batch_of(b)
            with torch.no_grad():
                module.train()
                q = encoder.forward_train([data.queries[x] for x in qids], "query")
                d = encoder.forward_train([data.corpus[x] for x in doc_ids], "document")
                on.append(float((d > 0).sum(dim=1).float().mean()))
                if cfg.target_doc_nnz is not None:
                    module.eval()
                    d_off = encoder.forward_train([data.corpus[x] for x in doc_ids], "document")
                    off.append(float((d_off > 0).sum(dim=1).float().mean()))
                    module.train()
            if cfg.loss == "contrastive":
                scores, target = contrastive_scores(q, d, per, cfg.in_batch)
                batches.append((scores, target, fn_mask(qids, doc_ids)))
            else:
                s = own_scores(q, d, per)
                batches.append((s, torch.zeros(len(qids), dtype=torch.long), None))
                pairs.append((s, teacher_scores(qids, doc_ids)))
        out: dict[str, Any] = {"batches": len(batches), "doc_nnz_dropout_on": float(np.mean(on))}
        if isinstance(cfg.temperature, str):
            out["temperature"] = calibrate_temperature(batches)
            out["temperature_source"] = cfg.temperature
        else:
            out["temperature"] = float(cfg.temperature)
            out["temperature_source"] = "given"
        if pairs:
            s = torch.cat([p[0] for p in pairs])
            t = torch.cat([p[1] for p in pairs])
            sm, tm = s[:, :1] - s[:, 1:], t[:, :1] - t[:, 1:]
            out["teacher_scale"] = float((sm * tm).sum() / (tm * tm).sum().clamp(min=1e-12))
            out["teacher_temperature"] = cfg.teacher_temperature or _kl_teacher_temperature(
                s, t, out["temperature"]
            )
        if off:
            out["doc_nnz_dropout_off"] = float(np.mean(off))
            out["nnz_ratio"] = out["doc_nnz_dropout_off"] / max(out["doc_nnz_dropout_on"], 1e-9)
        else:
            out["nnz_ratio"] = 1.0
        if cfg.target_doc_nnz == "start":
            out["target_doc_nnz"] = out["doc_nnz_dropout_off"]
        elif cfg.target_doc_nnz is not None:
            out["target_doc_nnz"] = float(cfg.target_doc_nnz)
        return out

    def _evaluate(
        self, encoder: Any, module: Any, corpus: dict[str, str], data: Any, step: int, log: Any, evaluate: Any
    ) -> dict[str, Any]:
        import torch

        module.eval()
        with torch.no_grad():
            res = {"step": step, **evaluate(encoder, corpus, data.dev_queries, data.dev_qrels)}
        module.train()
        log.write(json.dumps({"eval": res}) + "\n")
        log.flush()
        return res

    def _checkpoint(self, encoder: Any, opt: Any, step: int, extra: dict[str, Any]) -> None:
        import torch

        root = os.path.join(self.cfg.output, CHECKPOINTS)
        final = os.path.join(root, f"step-{step:06d}")
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        encoder.save(tmp)
        torch.save(
            {"optimizer": opt.state_dict(), "step": step, "config": asdict(self.cfg), **extra},
            os.path.join(tmp, STATE_FILE),
        )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        done = sorted(d for d in os.listdir(root) if d.startswith("step-") and not d.endswith(".tmp"))
        for old in done[: -self.cfg.keep_checkpoints]:
            shutil.rmtree(os.path.join(root, old), ignore_errors=True)


def has_split(data: str, split: str) -> bool:
    """Whether the BEIR folder (or bundled name) ``data`` has ``qrels/<split>.tsv``."""
    from lsr.eval.datasets import beir_folder

    try:
        beir_folder(data, split)
    except LsrError:
        return False
    return True


def _kl_teacher_temperature(student: Any, teacher: Any, tau: float) -> float:
    """The teacher softmax temperature whose distribution is closest (mean KL) to the starting
    student's at temperature ``tau``: puts teacher scores on the student's scale before distilling."""
    import torch

    s = torch.log_softmax(student.double() / tau, dim=1)
    best, best_t = float("inf"), 1.0
    for t in np.exp(np.linspace(np.log(1e-3), np.log(1e3), 241)):
        lt = torch.log_softmax(teacher.double() / float(t), dim=1)
        kl = float((lt.exp() * (lt - s)).sum(dim=1).mean())
        if kl < best:
            best, best_t = kl, float(t)
    return best_t


def train(config: TrainConfig, show_progress: bool = False) -> dict[str, Any]:
    """Run a training job (see :class:`TrainConfig`); returns the report written to ``train_report.json``."""
    return Trainer(config, show_progress).run()
