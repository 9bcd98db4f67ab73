"""Pre-training methods; ``METHODS`` maps a config name to its class."""

from vidssl.methods.base import Method
from vidssl.methods.byol import BYOL
from vidssl.methods.cstp import CSTP
from vidssl.methods.cvrl import CVRL
from vidssl.methods.cvtcl import CVTCL
from vidssl.methods.moco import MoCo
from vidssl.methods.mtcl import MTCL
from vidssl.methods.pretext import Pretext
from vidssl.methods.simclr import SimCLR
from vidssl.methods.simsiam import SimSiam
from vidssl.methods.supervised import Supervised
from vidssl.methods.xclip import XCLIP

METHODS: dict[str, type[Method]] = {
    "simclr": SimCLR,
    "moco": MoCo,
    "byol": BYOL,
    "simsiam": SimSiam,
    "cvrl": CVRL,
    "cvtcl": CVTCL,
    "xclip": XCLIP,
    "pretext": Pretext,
    "cstp": CSTP,
    "mtcl": MTCL,
    "supervised": Supervised,
}

__all__ = [
    "BYOL",
    "CSTP",
    "CVRL",
    "CVTCL",
    "MTCL",
    "Pretext",
    "METHODS",
    "Method",
    "MoCo",
    "SimCLR",
    "SimSiam",
    "Supervised",
    "XCLIP",
]
