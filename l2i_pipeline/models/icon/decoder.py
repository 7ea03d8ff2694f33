"""ICON's decoder: DFA (diverse feature aggregation), ICE (integrity channel enhancement), PWV (part-whole
verification with EM-routing capsules).

Submodule names follow the official checkpoints so their keys load one to one. Behaviour follows the
official inference code, including its quirks: ICE ignores its second input (the released weights were
trained that way), and EM routing keeps its constants (eps 1e-12, 3 iterations, final lambda 0.01).
Modules that the official network holds but never calls (ICE.conv_mask, PWV.fuse1) are kept for their keys.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

EM_EPS = 1e-12


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bilinear (align_corners=False) resize, skipped when the size already matches."""
    return x if x.shape[2:] == size else F.interpolate(x, size=size, mode="bilinear")


def _fuse_block(c: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True))


class AsymConv(nn.Module):
    """3x3 + 3x1 + 1x3 convolutions, each with its own BN, summed (ACNet style, not fused)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.square_conv = nn.Conv2d(cin, cout, (3, 3), padding=1, bias=False)
        self.square_bn = nn.BatchNorm2d(cout)
        self.ver_conv = nn.Conv2d(cin, cout, (3, 1), padding=(1, 0), bias=False)
        self.hor_conv = nn.Conv2d(cin, cout, (1, 3), padding=(0, 1), bias=False)
        self.ver_bn = nn.BatchNorm2d(cout)
        self.hor_bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.square_bn(self.square_conv(x)) + self.ver_bn(self.ver_conv(x)) + self.hor_bn(self.hor_conv(x))


class DFA(nn.Module):
    """Plain, asymmetric and dilated 3x3 branches, concatenated and fused to `cout` channels."""

    def __init__(self, cin: int, cout: int = 64):
        super().__init__()
        self.asyConv = AsymConv(cin, cout)
        self.oriConv = nn.Conv2d(cin, cout, 3, padding=1)
        self.atrConv = nn.Sequential(nn.Conv2d(cin, cout, 3, dilation=2, padding=2), nn.BatchNorm2d(cout), nn.PReLU())
        self.conv2d = nn.Conv2d(cout * 3, cout, 3, padding=1)
        self.bn2d = nn.BatchNorm2d(cout)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        p = torch.cat((self.oriConv(f), self.asyConv(f), self.atrConv(f)), 1)
        return F.relu(self.bn2d(self.conv2d(p)))


class ICE(nn.Module):
    """Channel re-weighting from the L2 norm of each channel (a global context gate)."""

    def __init__(self, channels: int = 64, ratio: int = 8):
        super().__init__()
        self.conv_cross = nn.Conv2d(3 * channels, channels, 3, padding=1, bias=False)
        self.bn_cross = nn.BatchNorm2d(channels)
        self.conv_mask = nn.Conv2d(channels, 1, 1)  # unused by the official forward; keeps its keys
        hidden = channels // ratio
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.LayerNorm([hidden, 1, 1]), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor, neighbour: torch.Tensor | None = None) -> torch.Tensor:
        # Official quirk: the second input is always replaced by the first, and the third (neighbour)
        # is used only when its size differs from x's (resized to x); otherwise x stands in for it.
        third = _resize(neighbour, x.shape[2:]) if neighbour is not None and neighbour.shape[2:] != x.shape[2:] else x
        y = F.relu(self.bn_cross(self.conv_cross(torch.cat((x, x, third), 1))))
        # sum of squares over a whole map: accumulate in fp32 so fp16 autocast cannot overflow
        context = (y.float().pow(2).sum((2, 3), keepdim=True) + 1e-5).sqrt().to(y.dtype)
        return y * self.channel_add_conv(context)


class EmRouting2d(nn.Module):
    """Convolutional EM routing between capsule maps (Hinton et al. 2018), 3x3 kernel, stride 2.

    Runs in fp32 whatever the autocast state: its 1e-12 eps and logs underflow in fp16.
    """

    def __init__(self, caps_in: int = 8, caps_out: int = 8, pose_size: int = 16, kernel: int = 3, stride: int = 2,
                 padding: int = 1, iters: int = 3, final_lambda: float = 1e-2):
        super().__init__()
        self.A, self.B, self.psize = caps_in, caps_out, pose_size
        self.mat = int(round(math.sqrt(pose_size)))
        self.k, self.stride, self.pad = kernel, stride, padding
        self.kkA = kernel * kernel * caps_in
        self.iters, self.final_lambda = iters, final_lambda
        self.ln_2pi = math.log(2 * math.pi)
        self.W = nn.Parameter(torch.empty(self.kkA, caps_out, self.mat, self.mat))
        self.beta_u = nn.Parameter(torch.zeros(1, 1, caps_out, 1))
        self.beta_a = nn.Parameter(torch.zeros(1, 1, caps_out))
        nn.init.kaiming_uniform_(self.W)

    def _m_step(self, v, a_in, r, lam):
        r = r * a_in[..., None, None]  # [b, l, kkA, B, 1]
        r_sum = r.sum(2, keepdim=True)
        coeff = r / (r_sum + EM_EPS)
        mu = (coeff * v).sum(2, keepdim=True)  # [b, l, 1, B, psize]
        sigma_sq = (coeff * (v - mu) ** 2).sum(2, keepdim=True) + EM_EPS
        cost = (self.beta_u + torch.log(sigma_sq.squeeze(2).sqrt())) * r_sum.squeeze(2)  # [b, l, B, psize]
        a_out = torch.sigmoid(lam * (self.beta_a - cost.sum(3)))  # [b, l, B]
        return a_out, mu, sigma_sq

    def _e_step(self, v, a_out, mu, sigma_sq):
        # official form: log(sigma^2 * ln(2 pi)), a product where the Gaussian has a sum; kept as trained
        ln_p = -0.5 * torch.log(sigma_sq * self.ln_2pi).sum(-1) - ((v - mu) ** 2 / (2 * sigma_sq)).sum(-1)
        return torch.softmax(ln_p + torch.log(a_out[:, :, None, :]), dim=-1)[..., None]

    def forward(self, a_in: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device_type=pose.device.type, enabled=False):
            return self._route(a_in.float(), pose.float())

    def _route(self, a_in: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = a_in.shape
        kk = self.k * self.k
        oh = (h + 2 * self.pad - self.k) // self.stride + 1
        ow = (w + 2 * self.pad - self.k) // self.stride + 1
        # votes: every input capsule in each 3x3 window times its per-(position, in, out) 4x4 matrix
        p = F.unfold(pose, self.k, stride=self.stride, padding=self.pad)  # [b, A*psize*kk, l]
        n_win = p.shape[-1]  # output positions
        p = p.reshape(b, self.A, self.psize, kk, n_win).permute(0, 4, 3, 1, 2)  # [b, l, kk, A, psize]
        p = p.reshape(b, n_win, self.kkA, 1, self.mat, self.mat)
        v = torch.matmul(p, self.W).reshape(b, n_win, self.kkA, self.B, self.psize)
        a = F.unfold(a_in, self.k, stride=self.stride, padding=self.pad)  # [b, A*kk, l]
        a = a.reshape(b, self.A, kk, n_win).permute(0, 3, 2, 1).reshape(b, n_win, self.kkA)

        r = a.new_ones(b, n_win, self.kkA, self.B, 1)
        for i in range(self.iters):
            lam = self.final_lambda * (1 - 0.95 ** (i + 1))
            a_out, mu, sigma_sq = self._m_step(v, a, r, lam)
            if i < self.iters - 1:
                r = self._e_step(v, a_out, mu, sigma_sq)
        pose_out = mu.reshape(b, n_win, self.B * self.psize).transpose(1, 2).reshape(b, -1, oh, ow)
        return a_out.transpose(1, 2).reshape(b, self.B, oh, ow), pose_out


class PWV(nn.Module):
    """Capsules over the three coarse levels vote for a whole-object pose, fed back into each level."""

    def __init__(self, channels: int = 64, num_caps: int = 8, pose_size: int = 16):
        super().__init__()
        caps_ch = num_caps * pose_size
        self.conv_trans = nn.Conv2d(channels * 3, 64, 3, padding=1, bias=False)
        self.bn_trans = nn.BatchNorm2d(64)
        self.conv_m = nn.Conv2d(64, num_caps, 5, padding=1, bias=False)
        self.conv_pose = nn.Conv2d(64, caps_ch, 5, padding=1, bias=False)
        self.bn_m = nn.BatchNorm2d(num_caps)
        self.bn_pose = nn.BatchNorm2d(caps_ch)
        self.emrouting = EmRouting2d(num_caps, num_caps, pose_size)
        self.bn_caps = nn.BatchNorm2d(caps_ch)
        self.conv_rec = nn.Conv2d(caps_ch, 64, 3, padding=1, bias=False)
        self.bn_rec = nn.BatchNorm2d(64)
        for i in (1, 2, 3):
            setattr(self, f"conv{i}", nn.Conv2d(128, 64, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(64))
            setattr(self, f"fuse{i}", _fuse_block(64))  # fuse1 is never called officially

    def forward(self, in1: torch.Tensor, in2: torch.Tensor, in3: torch.Tensor):
        size = in2.shape[2:]
        in1, in3 = _resize(in1, size), _resize(in3, size)
        x = F.relu(self.bn_trans(self.conv_trans(torch.cat((in1, in2, in3), 1))))
        m = torch.sigmoid(self.bn_m(self.conv_m(x)))
        pose = self.bn_pose(self.conv_pose(x))
        _, pose = self.emrouting(m, pose)
        pose = self.bn_caps(pose.to(x.dtype))
        pose = F.relu(self.bn_rec(self.conv_rec(pose)))
        up = _resize(pose, size)  # all three inputs now share in2's size
        out1 = F.relu(self.bn1(self.conv1(torch.cat((in1, up), 1))))
        out2 = F.relu(self.bn2(self.conv2(torch.cat((in2, up), 1))))
        out3 = F.relu(self.bn3(self.conv3(torch.cat((in3, up), 1))))
        out2 = self.fuse2(out2 * out1) + out2
        out3 = self.fuse3(out3 * out2) + out3
        return out1, out2, out3, pose
