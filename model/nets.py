"""The network of Table 1: two VGG-style pathways, a CCA embedding layer and the pairwise ranking loss.

Only modules and math live here: no file or dataset access.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelConfig


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """2 × (conv3-pad1, BN, ELU), then 2×2 max-pooling."""
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ELU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class Pathway(nn.Module):
    """One branch: four conv blocks, conv1-32 + BN (linear), average pooling → (B, 32).

    The pooling is split in two so that a window's vector can come from a wider feature map: `columns`
    averages over height only, and `forward` averages the columns left after dropping `context` columns
    at each side (the neighbourhood a crop carries for the receptive field, not part of the window).
    """

    def __init__(self, channels: tuple[int, ...], embed_dim: int) -> None:
        super().__init__()
        widths = (1, *channels)
        self.embed_dim = embed_dim
        self.blocks = nn.Sequential(*[_block(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)])
        self.head = nn.Sequential(nn.Conv2d(widths[-1], embed_dim, 1), nn.BatchNorm2d(embed_dim))

    def columns(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W) or (B, 1, H, W) input → (B, embed_dim, W // stride) column features.

        Channels-last layout: about 1.5× faster forward and backward on CPU than NCHW for these small
        channel counts (measured on 2 cores; MODEL.md)."""
        x = (x.unsqueeze(1) if x.dim() == 3 else x).contiguous(memory_format=torch.channels_last)
        return self.head(self.blocks(x)).mean(dim=2)

    def forward(self, x: torch.Tensor, context: int = 0) -> torch.Tensor:
        cols = self.columns(x)
        return cols[:, :, context : cols.shape[2] - context].mean(dim=2)


def _inv_sqrt(cov: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    return vecs @ torch.diag(vals.clamp_min(1e-8).rsqrt()) @ vecs.T


def cca_projections(
    x: torch.Tensor, y: torch.Tensor, reg: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Means and CCA projection matrices (A, B) of paired samples x, y (N, d); differentiable."""
    n, d = x.shape
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    sxx = xc.T @ xc / (n - 1) + reg * eye
    syy = yc.T @ yc / (n - 1) + reg * eye
    sxy = xc.T @ yc / (n - 1)
    wx, wy = _inv_sqrt(sxx), _inv_sqrt(syy)
    u, _, vh = torch.linalg.svd(wx @ sxy @ wy)
    return mx, my, wx @ u, wy @ vh.T


class CCALayer(nn.Module):
    """Projects both views onto their canonical directions (Dorfer et al. 2017, arXiv 1705.06979).

    Training uses the batch's own covariances so gradients flow through the projection; running
    estimates are kept for inference, and `refit` replaces them with an estimate from a large sample.
    """

    mean_x: torch.Tensor
    mean_y: torch.Tensor
    proj_x: torch.Tensor
    proj_y: torch.Tensor

    def __init__(self, dim: int, reg: float, momentum: float) -> None:
        super().__init__()
        self.reg, self.momentum = reg, momentum
        self.register_buffer("mean_x", torch.zeros(dim))
        self.register_buffer("mean_y", torch.zeros(dim))
        self.register_buffer("proj_x", torch.eye(dim))
        self.register_buffer("proj_y", torch.eye(dim))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training:
            return self.project_x(x), self.project_y(y)
        mx, my, a, b = cca_projections(x, y, self.reg)
        with torch.no_grad():
            m = self.momentum
            for buf, new in ((self.mean_x, mx), (self.mean_y, my), (self.proj_x, a), (self.proj_y, b)):
                buf.mul_(1 - m).add_(m * new.detach())
        return (x - mx) @ a, (y - my) @ b

    def project_x(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean_x) @ self.proj_x

    def project_y(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mean_y) @ self.proj_y

    @torch.no_grad()
    def refit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        mx, my, a, b = cca_projections(x.double(), y.double(), self.reg)
        for buf, new in ((self.mean_x, mx), (self.mean_y, my), (self.proj_x, a), (self.proj_y, b)):
            buf.copy_(new.to(buf.dtype))


class SheetAudioNet(nn.Module):
    """f (sheet pathway) and g (audio pathway) into one 32-d space; outputs are L2-normalised."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.sheet = Pathway(cfg.channels, cfg.embed_dim)
        self.audio = Pathway(cfg.channels, cfg.embed_dim)
        self.cca = CCALayer(cfg.embed_dim, cfg.cca_reg, cfg.cca_momentum)

    def forward(self, sheet: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: crops of cfg.sheet_crop / cfg.audio_crop → unit vectors of their centre windows."""
        cfg = self.cfg
        x, y = self.cca(self.sheet(sheet, cfg.sheet_context_cols), self.audio(audio, cfg.audio_context_cols))
        return F.normalize(x, dim=1), F.normalize(y, dim=1)

    def embed_sheet(self, sheet: torch.Tensor) -> torch.Tensor:
        """Sheet crops (B, *cfg.sheet_crop) → unit vectors of their centre windows."""
        return self.project_sheet(self.sheet(sheet, self.cfg.sheet_context_cols))

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio crops (B, *cfg.audio_crop) → unit vectors of their centre windows."""
        return self.project_audio(self.audio(audio, self.cfg.audio_context_cols))

    def project_sheet(self, pooled: torch.Tensor) -> torch.Tensor:
        """Pooled sheet-pathway features (N, 32) → joint space, unit length."""
        return F.normalize(self.cca.project_x(pooled), dim=1)

    def project_audio(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.cca.project_y(pooled), dim=1)


def infonce_loss(x: torch.Tensor, y: torch.Tensor, log_temperature: torch.Tensor) -> torch.Tensor:
    """Symmetric in-batch softmax (InfoNCE / NT-Xent): each pair against the batch's other items, with a
    learned temperature (clamped so that logits stay within ±100, as in CLIP)."""
    logits = (x @ y.T) / log_temperature.exp().clamp_min(0.01)
    target = torch.arange(len(x), device=x.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def ranking_loss(x: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """Eq. 1 in both directions: every other item of the batch is a contrastive example."""
    scores = x @ y.T  # cosine similarities of unit vectors
    positive = scores.diag()
    off = ~torch.eye(len(x), dtype=torch.bool, device=x.device)
    sheet_to_audio = (margin - positive[:, None] + scores).clamp_min(0)[off]
    audio_to_sheet = (margin - positive[None, :] + scores).clamp_min(0)[off]
    return (sheet_to_audio.sum() + audio_to_sheet.sum()) / len(x)
