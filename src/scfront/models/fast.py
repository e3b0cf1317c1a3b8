"""A faster copy of a model for attacks, checked against the model itself.

:func:`prepare_for_attack` returns an inference-only copy (eval mode, every parameter frozen)
in which each eval-mode ``BatchNorm2d`` that reads the output of a ``Conv2d`` and nothing else
is folded into that convolution (``W' = W·γ/√(σ²+ε)``, ``b' = (b − μ)·γ/√(σ²+ε) + β``, computed
in float64): exact up to float rounding, and one pass over the activations fewer per fold.
Before returning it, the copy's logits and input gradient on a probe batch are compared with
the model's own (:func:`compare_models`); a copy that disagrees is replaced by the plain copy,
with a logged warning (or an error, ``on_mismatch="raise"``).

Where a BatchNorm can be folded is found generically, for scfront's classifiers and for any
user ``nn.Module``:

1. the model is traced with ``torch.fx`` (scfront's two helpers with data-dependent branches,
   :func:`~scfront.models.layers.cpu_channels_last` and
   :func:`~scfront.models.layers.match_channels`, are kept as opaque calls); a module that
   does not trace (the sparse coding encoder, code with data-dependent control flow) is split
   into its children, recursively, and each child that traces is analysed on its own;
2. in each traced graph, a ``BatchNorm2d`` call whose input is a ``Conv2d`` call (through any
   ``nn.Identity``) with no other user is a candidate. Pre-activation BatchNorms (after a
   residual sum, or before the convolution) have no such input and stay as they are;
3. one probe forward then checks, on the real module calls, that each candidate convolution and
   BatchNorm is called exactly once and that the BatchNorm receives the convolution's output
   tensor itself; modules with hooks or parametrizations, shared parameters, subclasses with
   their own ``forward`` and BatchNorms using batch statistics in eval mode are left alone.

Folded BatchNorms are replaced by :class:`FoldedBatchNorm`, an identity that refuses to run in
training mode (the copy is for attacks only). The original model is never modified; random
layers of the copy keep drawing from the original's generators (the ``generator`` attributes,
scfront's convention, are shared, not copied), so the copy's random stream is the model's.

Modes, measured with ``python -m benchmarks.bench_fast_model`` (2-core CPU, torch 2.13, one
thread, 250 CIFAR-10 images; speedups over the plain copy, median of 7 alternating rounds, for
the natural ResNet-32 / the original PGD-AT ResNet-32 / the shipped defense; the machine was
shared with other jobs, so differences of a few percent are noise):

- ``"fold"`` (what ``"auto"`` selects): the folding above, with the weights of convolutions
  that read channels-last input (scfront's classifiers on the CPU) stored channels-last.
  Inference 1.07 / 1.11 / 1.03x, forward + input gradient 1.14 / 1.15 / 1.09x; preparing
  takes 0.2-0.4 s. The only option that helps both.
- ``"jit"``: folding, plus a frozen TorchScript trace (``torch.jit.freeze``) of each traced
  part that receives plain tensors (for a defended model: its classifier; the whole defended
  model does not trace), used for the calls that need no input gradient (predictions,
  black-box queries); calls whose input requires a gradient run the folded eager module.
  Opt-in: no faster than ``"fold"`` (1.07 / 1.11 / 1.03x inference), and TorchScript is
  deprecated in torch 2.13. A trace used for gradients too was no faster either.
- ``"compile"``: the same with ``torch.compile`` (inductor) instead of TorchScript. Opt-in:
  inference 1.29 / 1.21 / 1.07x, but compiling took 72 s at the probe's batch size plus 43 s
  at the attack's (a cold inductor cache; again for each new batch size), and it needs a C++
  compiler. Compiled gradients are not used: forward + input gradient through
  ``torch.compile`` ran 0.70 / 0.72 / 0.75x the plain model's speed, after 52 s of compiling.
- ``"plain"``: the copy, frozen and in eval mode, nothing else.

On CUDA, where cuDNN computes float32 convolutions in TF32 by default (10-bit mantissa), the
folded and the plain model round differently at that precision, so the check may refuse the
fold there and fall back to the plain copy (not measured: no GPU was available).
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal

import torch
import torch.fx as fx
from torch import nn
from torch.nn.utils import parametrize

from scfront.models.layers import cpu_channels_last, eval_mode, match_channels

__all__ = ["AUTO_MODE", "Agreement", "FoldedBatchNorm", "Folding", "LOGIT_TOLERANCE", "GRADIENT_TOLERANCE", "MODES",
           "Preparation", "compare_models", "fold_batchnorm", "fold_into", "prepare_for_attack",
           "relative_errors"]

log = logging.getLogger(__name__)

Mode = Literal["auto", "fold", "jit", "compile", "plain"]
MODES: tuple[str, ...] = ("auto", "fold", "jit", "compile", "plain")
AUTO_MODE = "fold"  # the only option faster both for inference and for forward + gradient here
LOGIT_TOLERANCE = 1e-4  # max |fast − plain| / max |plain| over the probe's logits
# Median over the probe's images of ‖∇fast − ∇plain‖₂ / ‖∇plain‖₂ per image. Float rounding
# alone gives 1e-6 to 1e-5; but an activation within rounding of a leaky ReLU's kink may take the
# other slope in one model, which moved single images' gradients by up to 7e-2 (in the plain
# model as often as in the folded one, compared with float64), hence the median.
GRADIENT_TOLERANCE = 1e-3
# Functions scfront's classifiers call whose bodies branch on tensor values (device, shape):
# torch.fx records them as single calls instead of tracing into them.
OPAQUE_FUNCTIONS: tuple[Callable[..., Any], ...] = (cpu_channels_last, match_channels)


# ---------------------------------------------------------------------------------- reports
@dataclass(frozen=True)
class Agreement:
    """How closely a fast model follows the plain one on a probe batch.

    Attributes:
        logits: max |fast − plain| / max |plain| over the (N, K) logits (no gradient).
        gradient: the median over images of ‖∇fast − ∇plain‖₂ / ‖∇plain‖₂, the input gradient
            of a fixed random projection of the logits; ``nan`` if it was not measured, ``inf``
            if the fast model gave no gradient.
        gradient_max: the largest of those per-image errors (``nan``/``inf`` likewise).
        logit_tolerance, gradient_tolerance: the bounds they were checked against.
    """

    logits: float
    gradient: float
    gradient_max: float = math.nan
    logit_tolerance: float = LOGIT_TOLERANCE
    gradient_tolerance: float = GRADIENT_TOLERANCE

    @property
    def ok(self) -> bool:
        """Both within their bounds (a gradient that was not measured does not count)."""
        gradient_ok = math.isnan(self.gradient) or self.gradient <= self.gradient_tolerance
        return self.logits <= self.logit_tolerance and gradient_ok


@dataclass(frozen=True)
class Preparation:
    """What :func:`prepare_for_attack` did; kept on the returned model as ``attack_preparation``.

    Attributes:
        requested: the mode asked for (``"auto"`` included).
        mode: the mode of the returned model (``"plain"`` after a fallback).
        folded: ``(convolution, batchnorm)`` module names whose BatchNorm was folded.
        unfolded: names of the eval-mode ``BatchNorm2d`` modules left as they were.
        channels_last: convolutions whose weights are now stored channels-last.
        compiled: names of the parts run by TorchScript or ``torch.compile`` (``""``: the whole).
        agreement: the check on the probe batch (``None``: not checked).
        fallback: why the requested mode was given up, if it was.
    """

    requested: str
    mode: str
    folded: tuple[tuple[str, str], ...] = ()
    unfolded: tuple[str, ...] = ()
    channels_last: tuple[str, ...] = ()
    compiled: tuple[str, ...] = ()
    agreement: Agreement | None = None
    fallback: str | None = None


@dataclass
class Folding:
    """What :func:`fold_batchnorm` found in a model.

    Attributes:
        pairs: ``(conv, bn)`` module names whose BatchNorm is folded into the convolution.
        channels_last: ``Conv2d`` modules that only received channels-last input on the probe.
        parts: the submodules torch.fx traced (``""``: the whole model).
    """

    pairs: list[tuple[str, str]] = field(default_factory=list)
    channels_last: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------- modules
class FoldedBatchNorm(nn.Module):
    """Stands where a BatchNorm was folded into the preceding convolution: the identity.

    The convolution before it now applies the normalisation. In training mode the batch
    statistics would be needed, which the fold has lost, so ``forward`` then raises.

    forward: x (N, C, H, W) → x unchanged (eval mode only).
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("this BatchNorm was folded into the preceding convolution for attacks; the "
                               "model from prepare_for_attack is inference-only (keep training the original)")
        return x

    def extra_repr(self) -> str:
        return f"{self.num_features}, folded into the preceding convolution"


class _FastInference(nn.Module):
    """A part whose calls without input gradient run a faster callable (a frozen TorchScript
    trace, or ``torch.compile``), and whose calls with one run the (folded) eager module.

    Gradient calls stay eager because neither backend made forward + input gradient faster than
    the folded module on the CPU (``benchmarks/bench_fast_model.py``), ``torch.compile`` would
    compile a second graph for them, and TorchScript traces do not keep the input-gradient
    layout hook of :func:`~scfront.models.layers.cpu_channels_last`.

    Args:
        eager: the (folded) module.
        fast: the same computation, for inputs that do not require a gradient.

    forward: the part's own inputs and outputs (tensors).
    """

    def __init__(self, eager: nn.Module, fast: Callable[..., Any]) -> None:
        super().__init__()
        self.eager = eager
        self.fast: Callable[..., Any] = fast

    def forward(self, *args: torch.Tensor) -> Any:
        if any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            return self.eager(*args)
        return self.fast(*args)


# ---------------------------------------------------------------------------------- tracing
class _Tracer(fx.Tracer):
    """torch.fx tracer that keeps :data:`OPAQUE_FUNCTIONS` as single calls."""

    def __init__(self) -> None:
        super().__init__(autowrap_functions=OPAQUE_FUNCTIONS)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _traced_parts(module: nn.Module, prefix: str = "") -> list[tuple[str, fx.Graph]]:
    """The largest submodules of ``module`` that torch.fx traces, with their graphs.

    ``module`` itself if it traces; otherwise the traced parts of each child, recursively.
    Module names in a graph are relative to its part (``prefix``).
    """
    try:
        return [(prefix, _Tracer().trace(module))]
    except Exception:  # noqa: BLE001 - any failure (TraceError, a check rejecting a Proxy, ...) means "split"
        parts: list[tuple[str, fx.Graph]] = []
        for name, child in module.named_children():
            parts += _traced_parts(child, _join(prefix, name))
        return parts


def _foldable_conv(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and type(module).forward is nn.Conv2d.forward
            and not parametrize.is_parametrized(module) and not _has_hooks(module))


def _foldable_bn(module: nn.Module) -> bool:
    return (isinstance(module, nn.BatchNorm2d) and type(module).forward is nn.BatchNorm2d.forward
            and module.track_running_stats and module.running_mean is not None
            and module.running_var is not None and not _has_hooks(module))


def _has_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or getattr(module, "_forward_hooks_with_kwargs", None))


def _candidates(part: nn.Module, graph: fx.Graph, prefix: str) -> list[tuple[str, str]]:
    """``(conv, bn)`` full names where, in ``graph``, the BatchNorm's only input is the
    convolution's output (through ``nn.Identity`` calls) and that output has no other user."""
    modules = dict(part.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not _foldable_bn(modules.get(node.target, nn.Identity())):
            continue
        if len(node.args) != 1 or node.kwargs or not isinstance(node.args[0], fx.Node):
            continue
        source = node.args[0]
        while (source.op == "call_module" and isinstance(modules.get(source.target), nn.Identity)
               and len(source.users) == 1 and len(source.args) == 1 and isinstance(source.args[0], fx.Node)):
            source = source.args[0]
        if source.op != "call_module" or len(source.users) != 1:
            continue
        conv, bn = modules.get(source.target), modules[node.target]
        if conv is not None and _foldable_conv(conv) and conv.out_channels == bn.num_features:
            pairs.append((_join(prefix, str(source.target)), _join(prefix, str(node.target))))
    return pairs


def _shared_parameters(model: nn.Module) -> set[int]:
    """ids of parameters registered in more than one place."""
    seen: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        seen[id(p)] = seen.get(id(p), 0) + 1
    return {key for key, count in seen.items() if count > 1}


def _strictly_channels_last(x: object) -> bool:
    """x is a 4-d tensor stored channels-last in a way NCHW storage is not (C > 1, H·W > 1)."""
    return (isinstance(x, torch.Tensor) and x.dim() == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last))


def _run_probe(model: nn.Module, probe: torch.Tensor, handles: list[Any]) -> None:
    """One gradient-free forward of ``probe`` that leaves the model's random generators as they
    were, then remove the hooks ``handles`` that watched it (also when the forward fails)."""
    try:
        with _same_randomness(model), torch.no_grad():
            model(probe)
    finally:
        for handle in handles:
            handle.remove()


def _probe(model: nn.Module, pairs: list[tuple[str, str]],
           probe: torch.Tensor) -> tuple[list[tuple[str, str]], list[str]]:
    """One forward of ``model`` on ``probe`` with hooks: which candidate pairs it confirms (each
    module called once, the BatchNorm reading the convolution's output tensor itself), and which
    ``Conv2d`` modules only ever received channels-last input."""
    modules = dict(model.named_modules())
    calls: dict[str, list[torch.Tensor]] = {name: [] for pair in pairs for name in pair}
    layouts: dict[str, list[bool]] = {}
    handles = []
    for name, module in modules.items():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_pre_hook(
                lambda _m, inputs, name=name: layouts.setdefault(name, []).append(
                    _strictly_channels_last(inputs[0]) if inputs else False)))
    for conv_name, bn_name in pairs:
        handles.append(modules[conv_name].register_forward_hook(
            lambda _m, _i, out, name=conv_name: calls[name].append(out)))
        handles.append(modules[bn_name].register_forward_pre_hook(
            lambda _m, inputs, name=bn_name: calls[name].append(inputs[0] if inputs else None)))
    _run_probe(model, probe, handles)
    confirmed = [(c, b) for c, b in pairs
                 if len(calls[c]) == 1 and len(calls[b]) == 1 and calls[b][0] is calls[c][0]]
    channels_last = [name for name, seen in layouts.items() if seen and all(seen)]
    return confirmed, channels_last


def _plan(model: nn.Module, probe: torch.Tensor) -> Folding:
    """Which (conv, bn) pairs of ``model`` (in eval mode) to fold, the convolutions that run on
    channels-last input, and the traced parts."""
    plan = Folding()
    with _same_randomness(model):  # tracing runs Python code of the forward methods
        parts = _traced_parts(model)
    plan.parts = [name for name, _ in parts]
    modules = dict(model.named_modules())
    pairs = []
    for name, graph in parts:
        pairs += _candidates(modules[name], graph, name)
    shared = _shared_parameters(model)
    pairs = [(c, b) for c, b in pairs
             if not any(id(p) in shared for p in (*modules[c].parameters(), *modules[b].parameters()))]
    plan.pairs, plan.channels_last = _probe(model, pairs, probe)
    return plan


# ---------------------------------------------------------------------------------- folding
@torch.no_grad()
def fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Make ``conv`` compute ``bn(conv(x))`` (eval-mode BatchNorm), in place.

    conv.weight (C_out, C_in/groups, kh, kw) is scaled per output channel by γ/√(σ²+ε) and the
    bias becomes (b − μ)·γ/√(σ²+ε) + β, both computed in float64 and stored in the weight's
    dtype and memory layout; the new parameters do not require gradients.
    """
    weight = conv.weight
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(mean)
    layout = torch.channels_last if (weight.dim() == 4 and not weight.is_contiguous()
                                     and weight.is_contiguous(memory_format=torch.channels_last)) \
        else torch.contiguous_format
    new_weight = (weight.double() * scale.view(-1, 1, 1, 1)).to(weight.dtype).contiguous(memory_format=layout)
    conv.weight = nn.Parameter(new_weight, requires_grad=False)
    conv.bias = nn.Parameter(((bias - mean) * scale + beta).to(weight.dtype), requires_grad=False)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> nn.Module:
    """Put ``module`` at ``name`` inside ``model`` (``""``: it replaces the model); returns the root."""
    if not name:
        return module
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)
    return model


def _frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with no parameter requiring a gradient; generators are shared."""
    memo: dict[int, Any] = {id(g): g for g in _generators(model)}
    clone = copy.deepcopy(model, memo)
    clone.eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def fold_batchnorm(model: nn.Module, probe: torch.Tensor, *,
                   channels_last_weights: bool = True) -> tuple[nn.Module, Folding]:
    """An eval-mode, frozen copy of ``model`` with every foldable BatchNorm folded.

    Args:
        model: any ``nn.Module`` (left unchanged).
        probe: (N, C, H, W) inputs of the model (a few are enough), for the forward that
            confirms the data flow found by tracing.
        channels_last_weights: store the weights of convolutions that run on channels-last
            input (scfront's classifiers on the CPU) channels-last too, so that oneDNN does not
            reorder them at every call; convolutions on NCHW input keep their layout (a
            channels-last weight would switch their output, and the input gradient, to
            channels-last).
    Returns:
        ``(copy, folding)``: the copy and what was done to it (:class:`Folding`).
    """
    clone = _frozen_copy(model)
    plan = _plan(clone, probe)
    for conv_name, bn_name in plan.pairs:
        bn = clone.get_submodule(bn_name)
        fold_into(clone.get_submodule(conv_name), bn)
        clone = _set_submodule(clone, bn_name, FoldedBatchNorm(bn.num_features).eval())
    if channels_last_weights:
        for name in plan.channels_last:
            conv = clone.get_submodule(name)
            conv.weight = nn.Parameter(conv.weight.detach().contiguous(memory_format=torch.channels_last),
                                       requires_grad=False)
    else:
        plan.channels_last = []
    return clone, plan


# ---------------------------------------------------------------------------------- backends
def _part_inputs(model: nn.Module, names: list[str], probe: torch.Tensor) -> dict[str, tuple[Any, ...]]:
    """The positional inputs of each named part on its first call in ``model(probe)``; parts
    called with keyword arguments or not called at all are absent."""
    seen: dict[str, tuple[Any, ...]] = {}
    bad: set[str] = set()
    handles = []
    for name in names:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], name: str = name) -> None:
            if kwargs:
                bad.add(name)
            seen.setdefault(name, args)
        handles.append(model.get_submodule(name).register_forward_pre_hook(hook, with_kwargs=True))
    _run_probe(model, probe, handles)
    return {name: args for name, args in seen.items() if name not in bad}


def _accelerate(model: nn.Module, parts: list[str], probe: torch.Tensor, backend: str) -> tuple[nn.Module, list[str]]:
    """Give each traced part whose probe inputs are all tensors a TorchScript or torch.compile
    path for its calls without input gradient (:class:`_FastInference`).

    The parts are disjoint subtrees (:func:`_traced_parts`). Returns the (possibly new) root
    and the names of the wrapped parts.
    """
    inputs = _part_inputs(model, parts, probe)
    done: list[str] = []
    for name in parts:
        args = inputs.get(name)
        if not args or not all(isinstance(a, torch.Tensor) for a in args):
            continue
        part = model.get_submodule(name)
        # the hooks move first: a TorchScript trace would record their tensor operations (and run
        # them twice with the wrapper's); torch.compile would graph-break on their Python checks
        wrapped = _FastInference(part, part)
        _move_forward_hooks(part, wrapped)
        if backend == "jit":
            with torch.no_grad(), _same_randomness(part), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the opaque helpers' branches
                wrapped.fast = torch.jit.freeze(torch.jit.trace(part, args, check_trace=False))
        else:
            wrapped.fast = torch.compile(part, backend="inductor")
        model = _set_submodule(model, name, wrapped)
        done.append(name)
    return model, done


_FORWARD_HOOKS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
                  "_forward_hooks_with_kwargs", "_forward_hooks_always_called")


def _move_forward_hooks(source: nn.Module, target: nn.Module) -> None:
    """Move ``source``'s own forward (pre-)hooks to ``target``, which wraps it.

    A TorchScript trace does not run module hooks (it records their tensor operations at most),
    so a hook left on the part (the input check of :mod:`scfront.models.inputs`, with its dtype
    conversion) would not check inference calls; on the wrapper it runs once for every call,
    before either path.
    """
    for attr in _FORWARD_HOOKS:
        hooks = getattr(source, attr, None)
        if hooks:
            getattr(target, attr).update(hooks)
            hooks.clear()


# ---------------------------------------------------------------------------------- randomness
def _generators(model: nn.Module) -> list[torch.Generator]:
    """The distinct ``generator`` attributes of ``model``'s modules (scfront's random layers)."""
    found: dict[int, torch.Generator] = {}
    for module in model.modules():
        generator = getattr(module, "generator", None)
        if isinstance(generator, torch.Generator):
            found[id(generator)] = generator
    return list(found.values())


class _same_randomness:  # noqa: N801 - used like a function (a context manager)
    """Inside the block ``model``'s generators and torch's default CPU generator may be drawn
    from; on exit they are back at their states from the start of the block."""

    def __init__(self, model: nn.Module) -> None:
        self.generators = _generators(model)

    def __enter__(self) -> None:
        self.states = [g.get_state() for g in self.generators]
        self.default = torch.get_rng_state()

    def __exit__(self, *exc: object) -> None:
        for generator, state in zip(self.generators, self.states):
            generator.set_state(state)
        torch.set_rng_state(self.default)


# ---------------------------------------------------------------------------------- checking
def _projection(logits: torch.Tensor) -> torch.Tensor:
    """A fixed (seeded) random direction in logit space, (N, K) like ``logits``."""
    draw = torch.randn(tuple(logits.shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return draw.to(device=logits.device, dtype=logits.dtype)


def _logits_and_gradient(model: nn.Module, probe: torch.Tensor,
                         gradient: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits (N, K) without gradient, and the input gradient (N, C, H, W) of ``Σ logits·v``
    (``None`` if not asked for or if the output does not depend on the input differentiably)."""
    with _same_randomness(model):
        with torch.no_grad():
            logits = model(probe).detach()
    if not gradient:
        return logits, None
    with _same_randomness(model):
        x = probe.detach().clone().requires_grad_(True)
        out = model(x)
        if not out.requires_grad:
            return logits, None
        (grad,) = torch.autograd.grad((out * _projection(out)).sum(), x)
    return logits, grad


def compare_models(fast: nn.Module, plain: nn.Module, probe: torch.Tensor, *, gradient: bool = True) -> Agreement:
    """Compare ``fast`` with ``plain`` on ``probe``: logits, and the input gradient.

    Both run in their current modes with the same random draws (every ``generator`` attribute
    and torch's default generator are reset between them and restored afterwards).

    Args:
        fast, plain: models mapping (N, C, H, W) to (N, K) logits.
        probe: (N, C, H, W) float inputs.
        gradient: also compare the input gradients of ``Σ logits·v`` (v a fixed random (N, K)).
    Returns:
        :class:`Agreement` (``gradient`` is ``nan`` when not asked for or when ``plain`` has no
        gradient path to its input, ``inf`` when only ``fast`` lacks one).
    """
    ref_logits, ref_grad = _logits_and_gradient(plain, probe, gradient)
    logits, grad = _logits_and_gradient(fast, probe, gradient and ref_grad is not None)
    if logits.shape != ref_logits.shape:
        return Agreement(math.inf, math.nan)
    scale = float(ref_logits.abs().max().clamp_min(torch.finfo(ref_logits.dtype).tiny))
    logit_error = float((logits.double() - ref_logits.double()).abs().max()) / scale
    if not math.isfinite(logit_error):
        logit_error = math.inf
    if ref_grad is None:
        return Agreement(logit_error, math.nan)
    if grad is None or grad.shape != ref_grad.shape:
        return Agreement(logit_error, math.inf, math.inf)
    per_image = relative_errors(grad, ref_grad)
    return Agreement(logit_error, float(per_image.median()), float(per_image.max()))


def relative_errors(grad: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(N,) float64 ‖grad_i − ref_i‖₂ / ‖ref_i‖₂ per image (0/0 → 0, x/0 → inf, nan → inf)."""
    diff = (grad.double() - ref.double()).flatten(1).norm(dim=1)
    norm = ref.double().flatten(1).norm(dim=1)
    errors = torch.where(norm > 0, diff / norm.clamp_min(torch.finfo(torch.float64).tiny),
                         torch.where(diff == 0, 0.0, math.inf))
    return torch.nan_to_num(errors, nan=math.inf)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _bn_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]


def _build(model: nn.Module, probe: torch.Tensor, mode: str) -> tuple[nn.Module, Preparation]:
    if mode == "plain":
        clone = _frozen_copy(model)
        return clone, Preparation(requested=mode, mode=mode, unfolded=tuple(_bn_names(clone)))
    clone, folding = fold_batchnorm(model, probe)
    unfolded = _bn_names(clone)  # before the backends wrap parts (which renames modules)
    compiled: list[str] = []
    if mode in ("jit", "compile"):
        clone, compiled = _accelerate(clone, folding.parts, probe, mode)
    return clone, Preparation(requested=mode, mode=mode, folded=tuple(folding.pairs), unfolded=tuple(unfolded),
                              channels_last=tuple(folding.channels_last), compiled=tuple(compiled))


def prepare_for_attack(model: nn.Module, probe: torch.Tensor, *, mode: Mode = "auto", check: bool = True,
                       on_mismatch: Literal["fallback", "raise"] = "fallback") -> nn.Module:
    """An inference-only copy of ``model`` for attacks, faster where it can be, verified.

    Args:
        model: any ``nn.Module`` mapping (N, C, H, W) to (N, K) logits (scfront's classifiers,
            a :class:`~scfront.models.defended.DefendedModel`, a user model); never modified.
        probe: (N, C, H, W) inputs like the attacked ones (a few images of the evaluation batch,
            float in [0, 1] for scfront's models), on the model's device: the folds are
            confirmed and the result is checked on it.
        mode: ``"auto"`` (= :data:`AUTO_MODE`), ``"fold"``, ``"jit"``, ``"compile"`` or
            ``"plain"`` (see the module docstring).
        check: compare the copy with ``model`` on ``probe`` (:func:`compare_models`): logits
            within :data:`LOGIT_TOLERANCE` relative, input gradients within
            :data:`GRADIENT_TOLERANCE`.
        on_mismatch: when the check fails, or building the mode fails: ``"fallback"`` returns
            the plain copy and logs a warning (``"jit"``/``"compile"`` first fall back to
            ``"fold"``); ``"raise"`` raises RuntimeError.
    Returns:
        A copy in eval mode whose parameters do not require gradients, with a
        :class:`Preparation` as its ``attack_preparation`` attribute. Random layers share the
        original's generators. BPDA rules of a defended model's encoder (``use_bpda``) apply to
        the copy as to any model.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if on_mismatch not in ("fallback", "raise"):
        raise ValueError(f"on_mismatch must be 'fallback' or 'raise', got {on_mismatch!r}")
    requested = mode
    chain = {"auto": [AUTO_MODE], "fold": ["fold"], "jit": ["jit", "fold"], "compile": ["compile", "fold"],
             "plain": ["plain"]}[mode]
    if chain[-1] != "plain":
        chain.append("plain")
    reasons: list[str] = []
    for attempt in chain:
        try:
            fast, prep = _build(model, probe, attempt)
            agreement = None
            if check and attempt != "plain":
                with eval_mode(model):
                    agreement = compare_models(fast, model, probe)  # torch.compile compiles here
        except Exception as exc:  # noqa: BLE001 - a backend that cannot handle the model
            if on_mismatch == "raise" or attempt == "plain":
                raise
            reasons.append(f"{attempt}: {type(exc).__name__}: {_first_line(exc)}")
            continue
        if agreement is not None and not agreement.ok:
            message = (f"{attempt}: logits differ by {agreement.logits:.2e} relative (limit "
                       f"{agreement.logit_tolerance:g}), input gradients by {agreement.gradient:.2e} "
                       f"(limit {agreement.gradient_tolerance:g})")
            if on_mismatch == "raise":
                raise RuntimeError(f"prepare_for_attack: the fast model does not match the plain one: {message}")
            reasons.append(message)
            continue
        prep = replace(prep, requested=requested, agreement=agreement,
                       fallback="; ".join(reasons) if reasons else None)
        if reasons:
            log.warning("prepare_for_attack(%s): falling back to %r (%s)", type(model).__name__, attempt,
                        prep.fallback)
        fast.attack_preparation = prep
        return fast
    raise AssertionError("unreachable: the plain mode always returns")  # pragma: no cover
