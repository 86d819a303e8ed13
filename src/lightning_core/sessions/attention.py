"""Resident single-head attention session with policy forwards and an SGD train step."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, PolicyError
from ..ops._checks import dim
from ..runtime.policy import AttentionIoPolicy
from .core import ResidentOp, SessionFront

__all__ = ["AttentionSession", "attention2d_session"]

_MAX_POST_VARIANTS = 8


class AttentionSession(SessionFront):
    """``softmax(Q Kᵀ / √d) V`` on resident ``[seq_len, head_dim]`` buffers.

    ``forward_with_policy_into`` uploads only the inputs whose ``upload_*`` flag is set (the
    others keep their resident contents), fuses the policy's postprocess, and downloads or
    synchronizes per the policy. Each distinct postprocess is one captured variant (at most 8).
    ``train_step`` runs one step of SGD on V against an MSE loss; V is updated in place.
    """

    def __init__(self, seq_len: int, head_dim: int, causal: bool = False,
                 device: str = "auto", dtype: Any = np.float32) -> None:
        op = "AttentionSession"
        self.seq_len = dim(op, "seq_len", seq_len, minimum=1)
        self.head_dim = dim(op, "head_dim", head_dim, minimum=1)
        if not isinstance(causal, (bool, np.bool_)) and causal not in (0, 1):
            raise InvalidArgumentError(f"[{op}] causal must be a bool, got {causal!r}")
        self.causal = bool(causal)
        self.scale = 1.0 / math.sqrt(self.head_dim)
        shape = (self.seq_len, self.head_dim)
        self._params = {"causal": self.causal, "scale": self.scale, "post": None}
        self._r = ResidentOp(op, "attention", {"q": shape, "k": shape, "v": shape}, shape,
                             dtype=dtype, device=device, params=self._params)
        self._posts: set[Any] = {None}
        self._policy = AttentionIoPolicy()
        self._target = None
        self._train_steps = 0
        self._last_loss = float("nan")

    def set_default_policy(self, policy: AttentionIoPolicy) -> None:
        """Policy used by ``forward``/``forward_into``/``train_step``."""
        if not isinstance(policy, AttentionIoPolicy):
            raise PolicyError(f"[AttentionSession] policy must be an AttentionIoPolicy, got "
                              f"{type(policy).__name__}")
        self._policy = policy

    def _upload(self, q: Any, k: Any, v: Any, policy: AttentionIoPolicy) -> None:
        values = {"q": q, "k": k, "v": v}
        self._r.check_inputs(values)
        flags = {"q": policy.upload_q, "k": policy.upload_k, "v": policy.upload_v}
        self._r.upload({name: val for name, val in values.items() if flags[name]})

    def forward_with_policy_into(self, q: Any, k: Any, v: Any, out: Any,
                                 policy: AttentionIoPolicy) -> Any:
        """Forward under ``policy`` into ``out``."""
        self._r.check("out", out, self._r.out_shape)
        post = policy.postprocess()
        if post not in self._posts:
            if len(self._posts) >= _MAX_POST_VARIANTS:
                raise PolicyError("[AttentionSession] too many distinct postprocess settings "
                                  f"(limit {_MAX_POST_VARIANTS}); use another session")
            self._r.bind(post, {**self._params, "post": post})
            self._posts.add(post)
        self._upload(q, k, v, policy)
        self._r.launch(1, key=post)
        if policy.download_out:
            self._r.download(out)
        elif policy.synchronize:
            self._r.sync()
        return out

    def forward_into(self, q: Any, k: Any, v: Any, out: Any) -> Any:
        """Forward under the default policy into ``out``."""
        return self.forward_with_policy_into(q, k, v, out, self._policy)

    def forward_with_policy(self, q: Any, k: Any, v: Any, policy: AttentionIoPolicy) -> Any:
        out = np.empty((self.seq_len, self.head_dim), dtype=self._r.dtype)
        return self.forward_with_policy_into(q, k, v, out, policy)

    def forward(self, q: Any, k: Any, v: Any) -> Any:
        """Forward under the default policy; returns a new host array."""
        return self.forward_with_policy(q, k, v, self._policy)

    def train_step(self, q: Any, k: Any, v: Any, target: Any, lr: float) -> tuple[Any, Any,
                                                                                   float]:
        """One SGD step on V against ``mean((out - target)²)``; returns (out, v, loss)."""
        return self.train_step_with_policy(q, k, v, target, lr, self._policy)

    def train_step_with_policy(self, q: Any, k: Any, v: Any, target: Any, lr: float,
                               policy: AttentionIoPolicy) -> tuple[Any, Any, float]:
        """``train_step`` under an explicit policy (uploads, downloads, loss cadence)."""
        if not math.isfinite(float(lr)):
            raise InvalidArgumentError(f"[AttentionSession] lr must be finite, got {lr!r}")
        r = self._r
        r.check("target", target, r.out_shape)
        self._upload(q, k, v, policy)
        if self._target is None:
            self._target = r.ex.alloc(r.out_shape, r.dtype)
        if policy.upload_target:
            r.ex.upload(r.op, "target", target, self._target)
        every = policy.loss_every if policy.loss_every > 0 else (1 if self.seq_len <= 512 else 4)
        want_loss = self._train_steps % every == 0
        loss = r.ex.run_eager(lambda: self._sgd_step(float(lr), want_loss))
        self._train_steps += 1
        if want_loss:
            self._last_loss = loss
        out_host = v_host = None
        if policy.download_out:
            out_host = np.empty(r.out_shape, dtype=r.dtype)
            r.ex.download(r.output, out_host)
        if policy.download_v:
            v_host = np.empty(r.out_shape, dtype=r.dtype)
            r.ex.download(r.bufs[2], v_host)
        if policy.synchronize:
            r.sync()
        return out_host, v_host, self._last_loss

    def _sgd_step(self, lr: float, want_loss: bool) -> float:
        """Forward with explicit probabilities, MSE gradient w.r.t. V, in-place SGD on V."""
        r = self._r
        xp = r.ex.xp
        q, k, v = r.bufs
        scores = (q @ k.T) * self.scale
        if self.causal:
            mask = xp.triu(xp.ones(scores.shape, dtype=bool), k=1)
            scores = xp.where(mask, -xp.inf, scores)
        scores -= scores.max(axis=1, keepdims=True)
        probs = xp.exp(scores)
        probs /= probs.sum(axis=1, keepdims=True)
        xp.matmul(probs, v, out=r.output)
        diff = r.output - self._target
        grad_v = probs.T @ (diff * (2.0 / diff.size))
        v -= lr * grad_v
        return float((diff * diff).mean()) if want_loss else float("nan")


def attention2d_session(q: Any, causal: bool = False, device: str = "auto") -> AttentionSession:
    """An ``AttentionSession`` sized from a 2-D ``q [seq_len, head_dim]``."""
    shape = np.shape(q)
    if len(shape) != 2:
        from ..errors import ShapeError

        raise ShapeError(f"[attention2d_session] q must be 2-D, got shape {shape}")
    return AttentionSession(shape[0], shape[1], causal, device)
