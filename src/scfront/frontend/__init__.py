"""scfront.frontend: the sparse coding frontend (docs/method.md §2, §3 and §6).

- :class:`Encoder`: conv with the dictionary atoms → noise → top-T → dropout → ternary activation.
- :class:`BPDA` (module :mod:`scfront.frontend.bpda`) and :func:`use_bpda`: the backward rules,
  chosen at attack time (``0`` = identity for ``top_u`` and ``steepness``).
- :class:`Decoder` / :func:`build_decoder`: the decoders of the paper, from one layer spec.
- :class:`Frontend` / :func:`build_frontend`: encoder + decoder, built from a ``FrontendConfig``.
"""

from scfront.frontend.bpda import BPDA, IdentityBackward, TanhSurrogateBackward, TopUMaskBackward
from scfront.frontend.codes import SparseCodes
from scfront.frontend.decoders import DECODER_LAYERS, ConvT, Decoder, Resize, build_decoder
from scfront.frontend.encoder import Encoder, use_bpda
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
    "build_decoder",
    "build_frontend",
    "use_bpda",
]
