"""A model's sized blocks and their sums, computed once per plan and shared by every rung of the ladder.

Pure; imports registry and nothing else of the launcher. Each rung of the ladder needs the same per-block
weights (per precision) and per-layer KV cache (per dtype); `ModelFigures` computes each list once, with its
sums, so the placement can screen a rung in closed form before placing blocks one by one."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate

from registry.memory import Precision, block_weight_bytes, kv_cache_bytes_per_layer
from registry.params import Block, Layout, layout
from registry.schema import Dtype, ModelCard


@dataclass(frozen=True)
class Sized:
    """One block with its weights in a precision and its layer's KV cache."""

    block: Block
    weights: int
    kv: int
    layer: int | None

    @property
    def resident(self) -> int:
        return self.weights + self.kv


@dataclass(frozen=True)
class Totals:
    """A model's blocks in one precision (and its dtype's KV cache) with their sums; the per-block `Sized`
    records are built only when a rung has to be placed block by block."""

    blocks: tuple[Block, ...]
    block_weights: tuple[int, ...]
    block_kv: tuple[int, ...]
    """Each block's KV cache (its layer's; 0 for blocks that are not layers)."""
    layer_positions: tuple[int, ...]
    """Where the decoder layers are among the blocks (layer i is blocks[layer_positions[i]])."""
    tied_positions: tuple[int, ...]
    names: tuple[str, ...]

    @cached_property
    def weights(self) -> int:
        return sum(self.block_weights)

    @cached_property
    def kv(self) -> int:
        """KV cache of every block."""
        return sum(self.block_kv)

    @cached_property
    def untied_kv(self) -> int:
        """KV cache of blocks that are not tied to another (those always pay their KV where they are computed)."""
        return self.kv - sum(self.block_kv[i] for i in self.tied_positions)

    @cached_property
    def largest_layer(self) -> int:
        """The largest decoder layer's weights."""
        return max(map(self.block_weights.__getitem__, self.layer_positions), default=0)

    @property
    def layers(self) -> tuple[int, int] | None:
        """First and last decoder layer index."""
        return (0, len(self.layer_positions) - 1) if self.layer_positions else None

    @cached_property
    def sized(self) -> tuple[Sized, ...]:
        layer_of = dict(zip(self.layer_positions, range(len(self.layer_positions)), strict=True))
        return tuple(
            Sized(b, w, k, layer_of.get(i))
            for i, (b, w, k) in enumerate(zip(self.blocks, self.block_weights, self.block_kv, strict=True))
        )

    @property
    def resident(self) -> int:
        return self.weights + self.kv

    @cached_property
    def cum_weights(self) -> tuple[int, ...]:
        """Weights of the first i blocks, for i = 0 … len(sized)."""
        return tuple(accumulate(self.block_weights, initial=0))

    @cached_property
    def cum_kv(self) -> tuple[int, ...]:
        return tuple(accumulate(self.block_kv, initial=0))

    @cached_property
    def cum_resident(self) -> tuple[int, ...]:
        return tuple(w + k for w, k in zip(self.cum_weights, self.cum_kv, strict=True))

    @cached_property
    def cum_layers(self) -> tuple[int, ...]:
        """Decoder layers among the first i blocks."""
        is_layer = [0] * len(self.blocks)
        for i in self.layer_positions:
            is_layer[i] = 1
        return tuple(accumulate(is_layer, initial=0))

    @cached_property
    def untied_head(self) -> int | None:
        """How many blocks come before the tied ones when every tied block follows all untied blocks and its
        owner is among them (a tied lm_head last: the usual case); None otherwise."""
        first = self.tied_positions[0] if self.tied_positions else len(self.blocks)
        head = set(self.names[:first])
        if all(b.tied_to is not None and b.tied_to in head for b in self.blocks[first:]):
            return first
        return None


@dataclass
class ModelFigures:
    """Per-model figures for one context and batch, each computed on first use (from `card`'s shape only:
    cards of one shape share them, see figures_for)."""

    card: ModelCard
    lay: Layout
    context: int
    batch: int
    _kv: dict[Dtype, list[int]] = field(default_factory=dict)
    _totals: dict[Precision, Totals] = field(default_factory=dict)
    _sums: dict[tuple[Precision, tuple[str, ...]], BlockSums] = field(default_factory=dict)
    _by_name: dict[str, Block] = field(default_factory=dict)
    _names: tuple[str, ...] = ()
    _layer_positions: tuple[int, ...] = ()
    _tied_positions: tuple[int, ...] = ()

    def kv_per_layer(self, dtype: Dtype) -> list[int]:
        if dtype not in self._kv:
            self._kv[dtype] = kv_cache_bytes_per_layer(self.card, self.context, self.batch, dtype)
        return self._kv[dtype]

    def totals(self, precision: Precision) -> Totals:
        """Every block sized in this precision, with the sums a rung screens on."""
        found = self._totals.get(precision)
        if found is None:
            found = self._totals[precision] = self._size(precision)
        return found

    def _size(self, precision: Precision) -> Totals:
        blocks, arch = self.lay.blocks, self.card.architecture
        if not self._names:
            self._names = tuple(b.name for b in blocks)
            self._layer_positions = tuple(i for i, b in enumerate(blocks) if b.role == "layer")
            self._tied_positions = tuple(i for i, b in enumerate(blocks) if b.tied_to is not None)
        kv = [0] * len(blocks)
        for position, value in zip(self._layer_positions, self.kv_per_layer(precision.dtype), strict=True):
            kv[position] = value
        return Totals(
            blocks=blocks,
            block_weights=tuple([block_weight_bytes(b, precision, arch) for b in blocks]),
            block_kv=tuple(kv),
            layer_positions=self._layer_positions,
            tied_positions=self._tied_positions,
            names=self._names,
        )

    def block_sums(self, precision: Precision, names: tuple[str, ...]) -> BlockSums:
        """What the named blocks weigh and what one token reads of them, kept per (precision, names): the
        same placements recur from rung to rung and between cards of one shape."""
        key = (precision, names)
        found = self._sums.get(key)
        if found is None:
            if not self._by_name:
                self._by_name.update((b.name, b) for b in self.lay.blocks)
            blocks = [self._by_name[n] for n in names]
            # As the speed model has always sized them: without the architecture (a native FP8/MXFP4 block
            # counts at the dtype's width here; the placement sizes it natively).
            found = self._sums[key] = BlockSums(
                active_bytes=sum(
                    block_weight_bytes(b, precision) * b.active // max(b.total, 1) for b in blocks
                ),
                active_params=sum(b.active for b in blocks),
                full_bytes=sum(block_weight_bytes(b, precision) for b in blocks),
                layers=sum(1 for b in blocks if b.role == "layer"),
            )
        return found


@dataclass(frozen=True)
class BlockSums:
    """Of some blocks in one precision: weight bytes one token reads (MoE blocks by their active share), the
    parameters it passes through, all their weight bytes, and how many decoder layers they hold (the speed
    model's per-layer overhead)."""

    active_bytes: int
    active_params: int
    full_bytes: int
    layers: int


# --------------------------------------------------------------------------- shared between cards

#: Cards whose figures are kept (a catalog repeats shapes: fine-tunes and instruct variants of one base).
CACHE_LIMIT = 4096
_layouts: dict[tuple[object, ...], Layout] = {}
_figures: dict[tuple[object, ...], ModelFigures] = {}


def shape_key(card: ModelCard) -> tuple[object, ...]:
    """Everything of a card that its layout, weights and KV cache depend on (not its id, licence or aliases)."""
    fields = dict(card.architecture.__dict__)
    extras = fields.pop("config_extras", None)
    measured = repr(card.measured_layout) if card.measured_layout is not None else None
    return (card.model_type, card.task, card.context_length, tuple(fields.values()), repr(extras), measured)


def card_layout(card: ModelCard, key: tuple[object, ...] | None = None) -> Layout:
    """registry.params.layout, computed once per shape."""
    key = key or shape_key(card)
    try:
        found = _layouts.get(key)
    except TypeError:  # a field that cannot be hashed: no sharing
        return layout(card)
    if found is None:
        if len(_layouts) >= CACHE_LIMIT:
            _layouts.clear()
        found = _layouts[key] = layout(card)
    return found


def figures_for(card: ModelCard, context: int, batch: int) -> tuple[Layout, ModelFigures]:
    """The card's layout and figures at this context and batch, shared with every card of the same shape."""
    key = shape_key(card)
    lay = card_layout(card, key)
    full = (key, context, batch)
    try:
        found = _figures.get(full)
    except TypeError:
        return lay, ModelFigures(card, lay, context, batch)
    if found is None:
        if len(_figures) >= CACHE_LIMIT:
            _figures.clear()
        kept = _kept.pop(full, None)
        found = _figures[full] = (
            ModelFigures(card, lay, context, batch)
            if kept is None
            else _restored(card, lay, context, batch, kept)
        )
    return lay, found


# --------------------------------------------------------------------------- kept between runs


@dataclass(frozen=True)
class KeptFigures:
    """A ModelFigures' computed fields without its card (they follow from the shape, context and batch)."""

    kv: dict[Dtype, list[int]]
    totals: dict[Precision, Totals]
    sums: dict[tuple[Precision, tuple[str, ...]], BlockSums]
    names: tuple[str, ...]
    layer_positions: tuple[int, ...]
    tied_positions: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.kv) + len(self.totals) + len(self.sums)


@dataclass(frozen=True)
class FiguresState:
    """The layouts and computed figures of every shape planned so far, without the cards: what
    launcher.run.figures_cache keeps between runs (all of it follows from the shape key and this code)."""

    layouts: dict[tuple[object, ...], Layout]
    figures: dict[tuple[object, ...], KeptFigures]


#: Figures of earlier runs (import_figures) by (shape, context, batch), made whole again by figures_for when a
#: card of that shape is planned.
_kept: dict[tuple[object, ...], KeptFigures] = {}


def _kept_of(found: ModelFigures) -> KeptFigures:
    return KeptFigures(
        found._kv, found._totals, found._sums, found._names, found._layer_positions, found._tied_positions
    )


def _restored(card: ModelCard, lay: Layout, context: int, batch: int, kept: KeptFigures) -> ModelFigures:
    return ModelFigures(
        card,
        lay,
        context,
        batch,
        _kv=kept.kv,
        _totals=kept.totals,
        _sums=kept.sums,
        _names=kept.names,
        _layer_positions=kept.layer_positions,
        _tied_positions=kept.tied_positions,
    )


#: At most this many (shape, context, batch) figures are exported: those this run used first, then kept ones
#: it did not use (a run at a new context would otherwise make every later run read a larger file).
EXPORT_LIMIT = 1024


def export_figures(limit: int = EXPORT_LIMIT) -> FiguresState:
    """What this run used, then what was kept from earlier runs and not used, up to `limit` figures, with the
    layouts of their shapes."""
    figures = {full: _kept_of(found) for full, found in list(_figures.items())[:limit]}
    for full, kept in _kept.items():
        if len(figures) >= limit:
            break
        figures.setdefault(full, kept)
    shapes = {full[0] for full in figures}
    layouts = {key: lay for key, lay in _layouts.items() if key in shapes}
    return FiguresState(layouts, figures)


def import_figures(state: FiguresState) -> None:
    """Take figures computed by an earlier run (what this run has computed itself stays)."""
    for key, lay in list(state.layouts.items())[:CACHE_LIMIT]:
        if isinstance(lay, Layout):
            _layouts.setdefault(key, lay)
    for full, kept in list(state.figures.items())[:CACHE_LIMIT]:
        if full not in _figures and isinstance(kept, KeptFigures):
            _kept[full] = kept


def figures_count() -> int:
    """How many figures have been computed or kept (grows when a run computes something new)."""
    computed = sum(len(f._kv) + len(f._totals) + len(f._sums) for f in _figures.values())
    return len(_layouts) + computed + sum(kept.count for kept in _kept.values())
