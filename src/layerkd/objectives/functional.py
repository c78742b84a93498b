"""The functional core: pure tensor functions every objective is built from.

All losses compute in float32 whatever the input dtype (safe under bf16/fp16 autocast) and
return a scalar. Shapes: B batch, m student layers, n teacher layers, d width, C classes,
h heads, T tokens. Reductions are stated per function and are part of the contract
(see ``docs/methods.md``); golden-value tests pin them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..layer_maps import rail_draw  # noqa: F401  (part of the functional API; lives with the layer maps)


def _einsum32(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """``einsum`` in float32 even under autocast, which would otherwise run it (a matmul) in bf16/fp16
    whatever the operands' dtype."""
    ops = [x.float() for x in operands]
    dev = ops[0].device.type
    available = getattr(torch.amp, "is_autocast_available", lambda d: d in ("cpu", "cuda"))
    if not available(dev):
        return torch.einsum(equation, *ops)
    with torch.autocast(device_type=dev, enabled=False):
        return torch.einsum(equation, *ops)


def kd_per_example(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · KL(softmax(zT/T) ‖ softmax(zS/T))`` summed over classes, one value per row ``[...]``."""
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1) * (t * t)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton KD: ``T² · KL(softmax(zT/T) ‖ softmax(zS/T))``, summed over classes, mean over batch.

    The T² factor keeps gradient magnitudes comparable across temperatures (Hinton et al. 2015).
    Works on ``[..., C]``: leading dims other than the batch are averaged as well.
    """
    return kd_per_example(student_logits, teacher_logits, temperature).mean()


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``−Σ_c softmax(zT/T) log softmax(zS/T)``, mean over batch (TinyBERT's prediction loss; no T²)."""
    t = float(temperature)
    p_t = F.softmax(teacher_logits.float() / t, dim=-1)
    return -(p_t * F.log_softmax(student_logits.float() / t, dim=-1)).sum(dim=-1).mean()


def layer_attention(
    student: torch.Tensor, teacher: torch.Tensor, scale: bool = False, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """ALP-KD weights ``[B, m, n]``: softmax over j of ``⟨s_i, t_j⟩`` (÷ √d when ``scale``).

    ``mask[m, n]`` (bool, True = allowed) restricts student layer i to a bucket of teacher layers.
    """
    logits = _einsum32("bmd,bnd->bmn", student, teacher)
    if scale:
        logits = logits / math.sqrt(student.shape[-1])
    if mask is not None:
        logits = logits.masked_fill(~mask.to(logits.device), float("-inf"))
    return torch.softmax(logits, dim=-1)


def fuse_layers(weights: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``[B, m, d]``: ``Σ_j w_ij t_j`` for weights ``[B, m, n]`` and teacher vectors ``[B, n, d]``."""
    return _einsum32("bmn,bnd->bmd", weights, teacher)


def output_attention(student_head_logits: torch.Tensor, teacher_head_logits: torch.Tensor) -> torch.Tensor:
    """Universal-KD weights ``[B, m, n]``: softmax over j of ``⟨zS_i, zT_j⟩`` (output space)."""
    logits = _einsum32("bmc,bnc->bmn", student_head_logits, teacher_head_logits)
    return torch.softmax(logits, dim=-1)


def attention_kl(student_attn: torch.Tensor, teacher_attn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``KL(A_T[b,a,q,:] ‖ A_S[b,a,q,:])`` summed over keys, averaged over batch, heads and the
    unpadded query positions. Padded keys carry no probability in either map (they are masked out
    of both before the KL); ``mask[B, T]`` is 1 for real tokens."""
    eps = 1e-12
    s = student_attn.float()
    t = teacher_attn.float()
    key_mask = mask[:, None, None, :].to(s.dtype)  # [B,1,1,T]
    t = t * key_mask
    t = t / t.sum(dim=-1, keepdim=True).clamp_min(eps)
    s = s * key_mask
    s = s / s.sum(dim=-1, keepdim=True).clamp_min(eps)
    kl = (t * (torch.log(t.clamp_min(eps)) - torch.log(s.clamp_min(eps)))).sum(dim=-1)  # [B,h,T]
    q_mask = mask[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * q_mask).sum() / q_mask.sum().clamp_min(1.0)


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return F.normalize(x.float(), p=2.0, dim=-1, eps=eps)


def pkd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """PKD patience loss: mean over all elements of ``(s/‖s‖ − t/‖t‖)²``, norms over d
    (the PKD code's convention: ``F.mse_loss`` of the normalised ``[B, k, d]`` tensors)."""
    return F.mse_loss(l2_normalize(student), l2_normalize(teacher))


def squared_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``‖s − t‖²`` summed over the last dim, averaged over all other dims."""
    return (student.float() - teacher.float()).pow(2).sum(dim=-1).mean()


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over real tokens: ``[B, T, d]`` states, ``mask[B, T]``; mean over real positions and d."""
    m = mask.to(torch.float32).unsqueeze(-1)
    diff = (student.float() - teacher.float()).pow(2) * m
    return diff.sum() / (m.sum().clamp_min(1.0) * student.shape[-1])


def attention_mse(student_attn: torch.Tensor, teacher_attn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE of attention maps ``[B, h, T, T]`` over real (query, key) pairs, averaged over them and heads."""
    pair = (mask[:, :, None] * mask[:, None, :]).to(torch.float32)[:, None]  # [B,1,T,T]
    diff = (student_attn.float() - teacher_attn.float()).pow(2) * pair
    return diff.sum() / (pair.sum().clamp_min(1.0) * student_attn.shape[1])


def cosine_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``1 − cos(s, t)`` over the last dim, averaged over the rest."""
    return (1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1, eps=1e-8)).mean()


def annealing_factor(epoch: int, phase_epochs: int, max_temperature: float) -> float:
    """Annealing-KD's factor φ for a 0-based epoch of phase 1 (of ``phase_epochs`` epochs).

    The temperature steps down from ``max_temperature`` to 1 evenly over the phase:
    ``τ_e = max(1, T_max − ⌊e · T_max / E⌋)`` and ``φ = 1 − (τ_e − 1) / T_max`` (Continuation-KD
    Eq. 5, Annealing-KD); the last epoch of the phase always uses τ = 1 (φ = 1), so φ starts at
    1/T_max and ends at 1 whatever the phase length.
    """
    if phase_epochs <= 0:
        raise ValueError("phase_epochs must be positive")
    tau = max(1.0, float(max_temperature) - math.floor(epoch * max_temperature / phase_epochs))
    if epoch >= phase_epochs - 1:
        tau = 1.0
    return 1.0 - (tau - 1.0) / float(max_temperature)
