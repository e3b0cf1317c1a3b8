"""scfront.frontend: the sparse coding frontend (PAPER.md sections 2, 3 and 6).

- :class:`Encoder`: conv with the dictionary atoms → noise → top-T → dropout → ternary activation.
- :class:`BPDA` and :func:`bpda`: the backward rules, chosen at attack time.
- :class:`Decoder` / :func:`build_decoder`: the decoders of the paper, from one layer spec.
- :class:`Frontend` / :func:`build_frontend`: encoder + decoder, built from a ``FrontendConfig``.
"""

from scfront.frontend.bpda import BPDA, IdentityBackward, TanhSurrogateBackward, TopUMaskBackward, bpda
from scfront.frontend.codes import SparseCodes
from scfront.frontend.decoders import DECODER_LAYERS, ConvT, Decoder, Resize, build_decoder
from scfront.frontend.encoder import Encoder
from scfront.frontend.frontend import Frontend, build_frontend

__all__ = [
    "BPDA",
    "ConvT",
    "DECODER_LAYERS",
    "Decoder",
    "Encoder",
    "Frontend",
    "IdentityBackward",
    "Resize",
    "SparseCodes",
    "TanhSurrogateBackward",
    "TopUMaskBackward",
    "bpda",
    "build_decoder",
    "build_frontend",
]
