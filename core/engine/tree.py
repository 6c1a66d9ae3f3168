"""The module tree as plain data, with output shapes and call counts from one dry run."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from hookscope.core.engine.context import eval_mode, model_device
from hookscope.core.engine.hooks import flatten_parts
from hookscope.core.engine.layouts import Layout, LayoutRecorder, ModelLayouts, remember
from hookscope.core.engine.outputs import OutputKind, output_kind
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.spec import InputSpec


@dataclass
class ModuleNode:
    """One module of the tree.

    Attributes:
        name: Qualified name (``""`` for the root).
        type: Class name.
        own_params: Parameters held directly by this module.
        total_params: Parameters of this module and all below it.
        trainable: True when any of its parameters (recursively) requires grad.
        out_shapes: Output part name → shape from the dry run; empty if it never ran.
        calls: How many times the module ran in one forward.
        children: Direct submodules.
        layout: How its (last call's) output is laid out, from the dry run's evidence
            (:class:`~core.engine.layouts.Layout`), or None when it never ran.
    """

    name: str
    type: str
    own_params: int
    total_params: int
    trainable: bool
    out_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    calls: int = 0
    children: list[ModuleNode] = field(default_factory=list)
    layout: Layout | None = None

    @property
    def out_shape(self) -> tuple[int, ...] | None:
        """Shape of the main (first) output part, or None."""
        return next(iter(self.out_shapes.values()), None)

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1] if self.name else "(model)"

    def walk(self):
        """Yield this node and every node below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def to_dict(self) -> dict:
        """JSON-ready summary (no children)."""
        return {
            "name": self.name,
            "type": self.type,
            "out_shape": list(self.out_shape) if self.out_shape is not None else None,
            "params": self.total_params,
            "own_params": self.own_params,
            "trainable": self.trainable,
            "calls": self.calls,
            "layout": str(self.layout) if self.layout is not None else None,
        }


@dataclass
class ModuleTree:
    """The tree plus what the dry run said.

    Attributes:
        root: The model's node.
        error: Why the dry run failed, or None.
        output_kind: What the model outputs (class scores, dense, detections, embedding), or
            None when the dry run failed; ``output_kind.note`` says when it was a guess.
        kind_error: Why the output fits no kind, or None.
        layouts: Every module's layout and the default CAM layer
            (``layouts.default_layer()``), or None when the dry run failed.
        cam_layer: The default CAM layer checked to give a map that is not flat (set by the
            load job for token models), or None: then the structural default stands.
    """

    root: ModuleNode
    error: str | None = None
    output_kind: OutputKind | None = None
    kind_error: str | None = None
    layouts: ModelLayouts | None = None
    cam_layer: str | None = None

    def default_cam_layer(self) -> str | None:
        """The checked default CAM layer, else the last layer with a grid larger than 1×1.

        A fact about the model (``inspect`` prints it); which layers the app hooks and
        explains by default is :func:`layer_defaults`, the one rule.
        """
        if self.cam_layer is not None:
            return self.cam_layer
        return self.layouts.default_layer() if self.layouts is not None else None

    def nodes(self) -> list[ModuleNode]:
        return list(self.root.walk())

    def find(self, name: str) -> ModuleNode | None:
        return next((n for n in self.root.walk() if n.name == name), None)

    def macs(self) -> int:
        """Rough multiply-accumulates of one forward, from the dry run's shapes.

        Each module with its own parameters counts ``params x output positions x calls``:
        exact for convolutions and linear layers, small extras for norms, attention products
        not counted. Enough to tell a 60 M model from a 2 G one.
        """
        total = 0
        for node in self.root.walk():
            shape = node.out_shape
            if not node.own_params or not node.calls or not shape:
                continue
            positions = (
                shape[2] * shape[3] if len(shape) == 4 else shape[1] if len(shape) == 3 else 1
            )
            total += node.own_params * positions * node.calls
        return total


def build_tree(
    model: nn.Module,
    spec: InputSpec | None = None,
    example: torch.Tensor | None = None,
    class_names=None,
) -> ModuleTree:
    """Describe ``model`` as a tree, running one no-grad forward to learn shapes and calls.

    The same dry run reads every layer's layout and the output's kind.

    Args:
        model: The model; its training mode is restored afterwards.
        spec: Used to make a zero input when ``example`` is None.
        example: An input tensor for the dry run.
        class_names: The model's class names (they tell class scores from an embedding).
    """
    nodes: dict[str, ModuleNode] = {}
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        total = sum(p.numel() for p in module.parameters())
        trainable = any(p.requires_grad for p in module.parameters())
        nodes[name] = ModuleNode(name, type(module).__name__, own, total, trainable)
        if name:
            parent = name.rsplit(".", 1)[0] if "." in name else ""
            nodes[parent].children.append(nodes[name])
    tree = ModuleTree(nodes[""])
    tree.error = _dry_run(model, nodes, spec, example, tree, class_names)
    return tree


def _dry_run(model, nodes, spec, example, tree, class_names) -> str | None:
    if isinstance(model, torch.jit.ScriptModule):
        return "TorchScript models do not run Python hooks, so shapes and call counts are unknown."
    if example is None:
        spec = spec or InputSpec()
        example = torch.zeros(1, spec.channels, *spec.size, device=model_device(model))
    handles = []

    def hook_for(name):
        def hook(module, args, output):
            node = nodes[name]
            node.calls += 1
            if node.calls == 1:
                node.out_shapes = {k: tuple(t.shape) for k, t in flatten_parts(output)}

        return hook

    recorder = LayoutRecorder(model)
    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_hook(hook_for(name)))
        with eval_mode(model), recorder, torch.no_grad():
            output = model(example)
        tree.layouts = recorder.report(tuple(example.shape))
        remember(model, example.shape, tree.layouts)
        for name, layout in tree.layouts.layouts.items():
            if name in nodes:
                nodes[name].layout = layout
        try:
            tree.output_kind = output_kind(output, class_names, model)
        except HookScopeError as exc:
            tree.kind_error = str(exc)
        return None
    except Exception as exc:  # a user model may fail on a dummy input; the tree is still useful
        first = (str(exc).splitlines() or [""])[0][:160]
        return f"The dry run on a zero input failed ({type(exc).__name__}: {first}), no shapes."
    finally:
        for h in handles:
            h.remove()


# -- the default-layer rule: one place ---------------------------------------------------------
@dataclass(frozen=True)
class LayerDefaults:
    """What to hook and explain when a model opens or the ticked layers change.

    Attributes:
        layers: Layers to hook, in order.
        cam_layers: The CAM layer (one at most), always among ``layers``.
        unknown: Asked-for names the model does not have (dropped from ``layers``).
    """

    layers: list[str]
    cam_layers: list[str]
    unknown: list[str] = field(default_factory=list)


def layer_defaults(
    tree: ModuleTree, asked: list[str] | None = None, *, fallback: bool = True
) -> LayerDefaults:
    """The one default-layer rule, for the app, sessions, the workbench and the Python API.

    With ``asked`` layers, the known ones are hooked and the CAM layer is the last of them with
    a feature map. Without (or, with ``fallback``, when none is known), the last two feature-map
    stages and the head are hooked (:func:`structural_layers`). ``tree.cam_layer`` (checked at
    load to give a map that is not flat) is the CAM layer: among those picks when it is one of
    them, else beside the last pick (a token model). A model whose picks hold no plain map (a
    detector's children output dicts) adds its last layer with a grid.

    Args:
        tree: The model's tree after its dry run.
        asked: Layers the user (or a session) named, or None.
        fallback: False when ``asked`` is the ticked set itself (even empty): then the CAM
            layer is chosen among it and nothing else is added.
    """
    names = {n.name for n in tree.nodes()}
    unknown = [n for n in (asked or []) if n not in names]
    picked = list(dict.fromkeys(n for n in (asked or []) if n in names))
    if picked or not fallback:
        return LayerDefaults(picked, _last_map(tree, picked), unknown)
    picked = structural_layers(tree)
    cam = _last_map(tree, picked)
    spatial = tree.default_cam_layer()
    if tree.cam_layer in picked:  # checked at load, and one of the structural picks
        cam = [tree.cam_layer]
    elif tree.cam_layer:  # e.g. a token model: the layer whose map is not flat, and the head
        picked = [tree.cam_layer, *[n for n in picked if n != tree.cam_layer][-1:]]
        cam = [tree.cam_layer]
    elif not cam and spatial:
        picked, cam = [*picked, spatial], [spatial]
    return LayerDefaults(picked, cam, unknown)


def _last_map(tree: ModuleTree, layers: list[str]) -> list[str]:
    """The last of ``layers`` with a feature-map output (CAM needs one), or none."""
    for name in reversed(layers):
        node = tree.find(name)
        if node is not None and _is_map(node):
            return [name]
    return []


def _is_map(node: ModuleNode) -> bool:
    """True when the node's output has a spatial grid larger than 1×1 (by its layout)."""
    if node.layout is not None:
        return bool(node.calls) and node.layout.spatial
    shape = node.out_shape
    return bool(node.calls) and shape is not None and len(shape) == 4 and shape[2] * shape[3] > 1


def structural_layers(tree: ModuleTree, limit: int = 3) -> list[str]:
    """The structural part of the rule: the last two feature-map stages and the head.

    Starts from the model's top-level children; when fewer than two of them output a feature
    map (N, C, H, W), looks inside the last one (e.g. ``features`` → its blocks).
    """
    kids = [n for n in tree.root.children if n.out_shape is not None]
    if not kids:  # dry run failed: fall back to any named leaf
        leaves = [n.name for n in tree.nodes() if n.name and not n.children]
        return leaves[-limit:]
    maps = [n for n in kids if _is_map(n)]
    while 0 < len(maps) < 2 and maps[-1].children:
        inner = [n for n in maps[-1].children if _is_map(n)]
        if not inner:
            break
        maps = maps[:-1] + inner
    vecs = [n.name for n in kids if len(n.out_shape) == 2 and n.calls]
    picked = [n.name for n in maps[-2:]] + vecs[-1:]
    return picked[-limit:] if picked else [kids[-1].name]
