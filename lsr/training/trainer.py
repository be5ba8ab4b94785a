"""``lsr train``: fine-tune any trainable encoder (SPLADE, uniCOIL, inference-free SPLADE, DyVo).

An encoder is trainable when it has ``train_module()`` (the ``torch.nn.Module`` to optimise),
``forward_train(texts, "query" | "document")`` (differentiable dense (batch, vocab) weights whose dot
product is the score) and ``save(path)``. One step takes ``batch_size`` (query, positive) pairs, adds
``n_negatives`` hard negatives per query, scores every query against every document of the batch, and
minimises the ranking loss plus the query and document sparsity regularisers, each weight ramped up
quadratically over ``reg_warmup_steps``.

Reproducibility: the pairs of step ``s`` and its negatives are drawn from generators seeded by
``(seed, epoch)`` and ``(seed, s)``, and torch's generator is reseeded from ``(seed, s)`` before the
step (dropout), so a run resumed from a checkpoint makes exactly the steps an uninterrupted run makes.
Checkpoints (``output/checkpoints/step-NNNNNN``: the encoder, the optimizer state and the step) are
written atomically every ``checkpoint_every`` steps; the newest ``keep_checkpoints`` are kept.
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


@dataclass
class TrainConfig:
    """Every setting of a training run (recorded in ``train_report.json`` and each checkpoint)."""

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
    teacher: str | None = None  # teacher scores (needed by margin_mse and kl)
    loss: str = "contrastive"
    in_batch: bool = True  # contrastive: other queries' documents are negatives too
    temperature: float = 1.0  # kl
    batch_size: int = 16
    steps: int | None = None  # total steps (default: ``epochs`` passes over the pairs)
    epochs: float = 1.0
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    grad_clip: float = 1.0
    reg: str = "flops"  # "flops", "l1", "idf_flops" (documents of inference-free models) or "none"
    lambda_q: float = 1e-3
    lambda_d: float = 1e-3
    reg_warmup_steps: int = 0
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    resume: bool = True
    seed: int = 42
    device: str = "auto"
    dev_split: str | None = None
    dev_fraction: float = 0.0
    learn_query_weights: bool = False  # inference-free: learn the query weight table too
    eval_every: int = 0  # evaluate on the dev set every N steps (0: only at the end, when there is a dev set)
    encoder_options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise LsrError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.reg not in REGULARIZERS:
            raise LsrError(f"reg must be one of {', '.join(REGULARIZERS)}, not {self.reg!r}")
        if self.loss in ("margin_mse", "kl") and not self.teacher:
            raise LsrError(f"loss {self.loss!r} distils teacher scores: pass a teacher file")
        if self.loss in ("margin_mse", "kl") and self.n_negatives < 1:
            raise LsrError(f"loss {self.loss!r} needs n_negatives >= 1")
        if self.loss in ("margin_mse", "kl") and self.negatives == "none":
            raise LsrError(f"loss {self.loss!r} needs hard negatives (negatives must not be 'none')")
        for name in ("batch_size", "checkpoint_every", "keep_checkpoints", "negatives_depth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise LsrError(f"{name} must be a positive integer, got {v!r}")
        for name in ("n_negatives", "warmup_steps", "reg_warmup_steps", "eval_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise LsrError(f"{name} must be an integer >= 0, got {v!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise LsrError(f"steps must be a positive integer, got {self.steps!r}")
        for name in ("lr", "epochs", "temperature"):
            if not getattr(self, name) > 0:
                raise LsrError(f"{name} must be > 0")
        for name in ("lambda_q", "lambda_d", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise LsrError(f"{name} must be >= 0")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise LsrError(f"device must be 'auto', 'cpu' or 'cuda[:N]', not {self.device!r}")


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
    def run(self) -> dict[str, Any]:
        import torch

        from lsr.losses import (
            bm25_idf,
            contrastive,
            idf_flops_weights,
            kl_distillation,
            linear_schedule,
            margin_mse,
            own_scores,
            regularizer,
            warmup_factor,
        )
        from lsr.training.data import evaluate, load_train_data, mine_negatives, read_teacher

        cfg = self.cfg
        os.makedirs(cfg.output, exist_ok=True)
        device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        t_start = time.perf_counter()

        resume_from = latest_checkpoint(cfg.output) if cfg.resume else None
        encoder = self._load_encoder(resume_from or cfg.model)
        module = encoder.train_module().to(device)
        data = load_train_data(cfg.data, cfg.split, cfg.dev_split, cfg.dev_fraction, cfg.seed)
        n_pairs = len(data.pairs)
        steps_per_epoch = max(1, -(-n_pairs // cfg.batch_size))
        total = cfg.steps or max(1, round(cfg.epochs * steps_per_epoch))

        teacher = read_teacher(cfg.teacher) if cfg.teacher else None
        negatives_path = os.path.join(cfg.output, "negatives.json")
        if resume_from and os.path.isfile(negatives_path):
            with open(negatives_path, encoding="utf-8") as f:
                negatives = json.load(f)  # the exact lists the interrupted run used
        else:
            negatives = mine_negatives(cfg.negatives, data, encoder, cfg.negatives_depth, self.show_progress)
            with open(negatives_path, "w", encoding="utf-8") as f:
                json.dump(negatives, f)
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

        params = [p for p in module.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() > 1]
        no_decay = [p for p in params if p.dim() <= 1]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
        )
        step = 0
        if resume_from:
            state = torch.load(os.path.join(resume_from, STATE_FILE), map_location=device, weights_only=False)
            opt.load_state_dict(state["optimizer"])
            step = int(state["step"])
            for group in opt.param_groups:  # the scheduler recomputes the rate from the base rate
                group["lr"] = cfg.lr
                group.pop("initial_lr", None)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: linear_schedule(s, cfg.warmup_steps, total), last_epoch=-1
        )
        with warnings.catch_warnings():  # replaying the schedule without optimizer steps is intended
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(step):  # the schedule is a pure function of the step
                sched.step()

        log_path = os.path.join(cfg.output, LOG_FILE)
        log = open(log_path, "a", encoding="utf-8")
        evals: list[dict[str, Any]] = []
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=step, desc="training", unit="step")
        module.train()
        last: dict[str, float] = {}
        try:
            while step < total:
                torch.manual_seed(cfg.seed * 1_000_003 + step)
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
                q_reps = encoder.forward_train([data.queries[q] for q in qids], "query")
                d_reps = encoder.forward_train([data.corpus[d] for d in doc_ids], "document")
                per = 1 + n_neg
                if cfg.loss == "contrastive":
                    rank_loss = contrastive(q_reps, d_reps, per, cfg.in_batch)
                else:
                    t = torch.tensor(
                        [
                            [teacher[q][d] for d in doc_ids[j * per : (j + 1) * per]]
                            for j, q in enumerate(qids)
                        ],  # type: ignore[index]
                        dtype=torch.float32,
                        device=d_reps.device,
                    )
                    s = own_scores(q_reps, d_reps, per)
                    rank_loss = (
                        margin_mse(s, t)
                        if cfg.loss == "margin_mse"
                        else kl_distillation(s, t, cfg.temperature)
                    )
                ramp = warmup_factor(step, cfg.reg_warmup_steps)
                reg_q = (
                    regularizer("flops" if cfg.reg == "idf_flops" else cfg.reg, q_reps)
                    if q_reps.requires_grad
                    else q_reps.new_zeros(())
                )
                reg_d = regularizer(cfg.reg, d_reps, idf_w)
                loss = rank_loss + ramp * (cfg.lambda_q * reg_q + cfg.lambda_d * reg_d)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                sched.step()
                step += 1
                with torch.no_grad():
                    last = {
                        "loss": float(loss),
                        "rank_loss": float(rank_loss),
                        "reg_q": float(reg_q),
                        "reg_d": float(reg_d),
                        "q_nnz": float((q_reps > 0).sum(dim=1).float().mean()),
                        "d_nnz": float((d_reps > 0).sum(dim=1).float().mean()),
                        "lr": float(sched.get_last_lr()[0]),
                    }
                log.write(json.dumps({"step": step, **last, "seconds": time.perf_counter() - t_start}) + "\n")
                log.flush()
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{last['loss']:.3f}", q_nnz=f"{last['q_nnz']:.0f}", d_nnz=f"{last['d_nnz']:.0f}"
                    )
                    bar.update(1)
                if step % cfg.checkpoint_every == 0 or step == total:
                    self._checkpoint(encoder, opt, step)
                if cfg.eval_every and step % cfg.eval_every == 0 and step < total and data.dev_qrels:
                    evals.append(self._evaluate(encoder, module, data, step, log, evaluate))
        finally:
            if bar is not None:
                bar.close()
        if data.dev_qrels and (not evals or evals[-1]["step"] != step):
            evals.append(self._evaluate(encoder, module, data, step, log, evaluate))
        log.close()
        module.eval()
        if hasattr(encoder, "refresh"):
            encoder.refresh()
        encoder.save(cfg.output)
        report = {
            "config": asdict(cfg),
            "device": device,
            "steps": step,
            "pairs": n_pairs,
            "steps_per_epoch": steps_per_epoch,
            "resumed_from": resume_from,
            "last": last,
            "dev": evals,
            "seconds": time.perf_counter() - t_start,
            "encoder": encoder.config(),
        }
        with open(os.path.join(cfg.output, REPORT_FILE), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        return report

    def _evaluate(
        self, encoder: Any, module: Any, data: Any, step: int, log: Any, evaluate: Any
    ) -> dict[str, Any]:
        import torch

        module.eval()
        with torch.no_grad():
            res = {"step": step, **evaluate(encoder, data.corpus, data.dev_queries, data.dev_qrels)}
        module.train()
        log.write(json.dumps({"eval": res}) + "\n")
        log.flush()
        return res

    def _checkpoint(self, encoder: Any, opt: Any, step: int) -> None:
        import torch

        root = os.path.join(self.cfg.output, CHECKPOINTS)
        final = os.path.join(root, f"step-{step:06d}")
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        encoder.save(tmp)
        torch.save(
            {"optimizer": opt.state_dict(), "step": step, "config": asdict(self.cfg)},
            os.path.join(tmp, STATE_FILE),
        )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        done = sorted(d for d in os.listdir(root) if d.startswith("step-") and not d.endswith(".tmp"))
        for old in done[: -self.cfg.keep_checkpoints]:
            shutil.rmtree(os.path.join(root, old), ignore_errors=True)


def train(config: TrainConfig, show_progress: bool = False) -> dict[str, Any]:
    """Run a training job (see :class:`TrainConfig`); returns the report written to ``train_report.json``."""
    return Trainer(config, show_progress).run()
