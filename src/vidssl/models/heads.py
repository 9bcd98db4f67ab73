"""MLP heads for self-supervised pre-training: projection (n -> hidden -> out) and predictor.

Layout of a ``num_layers``-layer head (``num_layers`` counts the Linear layers):

    [Linear(no bias) -> BN -> ReLU] x (num_layers - 1) -> Linear [-> BN(affine=False)]

Conventions this follows (and where the papers differ):
- CSTP appendix: two layers, n x 4096 and 4096 x 128 -> the defaults ``hidden_dim=4096``,
  ``out_dim=128``, ``num_layers=2``. CSTP does not state the normalisation; BN + ReLU in the
  hidden layer follows SimCLR's code, BYOL (Grill et al. 2020, Sec. 3.3) and CVRL's code.
- CVRL: three hidden layers of 2048 (``num_layers=4``, ``hidden_dim=2048``), 128-d output.
- SimSiam (Chen & He 2021, Sec. 4.4): BN also on the output layer, without ReLU
  (``last_batch_norm=True``; we use affine=False there, as SimSiam's code does).
- MoCo v2 uses no BN in its head; we keep BN for every method for a single head design
  (departure from MoCo v2, see ``vidssl.methods.moco``).
The CPU configs pass a smaller ``hidden_dim`` (e.g. 256).
"""

from __future__ import annotations

from torch import Tensor, nn


class ProjectionHead(nn.Module):
    """MLP head mapping pooled features to the space the loss is computed in.

    x: (N, in_dim) -> (N, out_dim). No normalisation of the output; the losses normalise.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 4096,
        out_dim: int = 128,
        *,
        num_layers: int = 2,
        batch_norm: bool = True,
        last_batch_norm: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            if value < 1:
                raise ValueError(f"ProjectionHead: {name} must be >= 1, got {value}")
        if num_layers < 1:
            raise ValueError(f"ProjectionHead: num_layers must be >= 1, got {num_layers}")
        self.in_dim, self.out_dim = in_dim, out_dim
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(dim, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim, bias=not last_batch_norm))
        if last_batch_norm:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, in_dim) -> (N, out_dim)."""
        return self.net(x)


class PredictorHead(ProjectionHead):
    """BYOL / SimSiam predictor: dim -> hidden -> dim, BN + ReLU in the hidden layer.

    BYOL uses hidden 4096 (Grill et al. 2020, Sec. 3.3); SimSiam a bottleneck of out/4
    (2048 -> 512 -> 2048, Chen & He 2021, Sec. 4.4). x: (N, dim) -> (N, dim).
    """

    def __init__(self, dim: int = 128, hidden_dim: int = 4096) -> None:
        super().__init__(dim, hidden_dim, dim, num_layers=2, batch_norm=True)
