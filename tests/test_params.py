"""Every catalog entry's analytic parameter count equals what transformers builds on the meta device."""

from __future__ import annotations

import pytest

from registry.catalog import load_catalog
from registry.params import layout
from registry.verify import meta_counts

CARDS = load_catalog(overlay=False).models

#: A published total may differ from the built model by at most this fraction once known extras are added.
PUBLISHED_TOLERANCE = 0.005


#: Built on the meta device in every run (a dense, a GQA, a parallel-attention and an MoE/MLA family); the
#: rest of the catalog only when slow tests run (about a second each).
QUICK = {"openai-community/gpt2", "mistralai/Mistral-7B-v0.1", "tiiuae/falcon-40b", "deepseek-ai/DeepSeek-V3"}
BUILT = [pytest.param(c, id=c.id, marks=() if c.id in QUICK else pytest.mark.slow) for c in CARDS]


@pytest.mark.parametrize("card", BUILT)
def test_analytic_count_equals_meta_model(card):
    lay = layout(card)
    built = meta_counts(card, [b.name for b in lay.blocks])
    assert lay.total == built.total
    assert sum(b.linear for b in lay.blocks) == built.quantizable_linear
    for block in lay.blocks:
        if block.tied_to is None:
            assert block.total == built.module_params[block.name], block.name


@pytest.mark.parametrize("card", CARDS, ids=[c.id for c in CARDS])
def test_published_count_agrees(card):
    computed = layout(card).total + card.stored_extra_params
    assert abs(card.params - computed) <= PUBLISHED_TOLERANCE * card.params, (
        f"{card.id}: catalog says {card.params:,}, transformers builds {layout(card).total:,}"
        f" + {card.stored_extra_params:,} stored extras"
    )
    if card.params_source == "computed":
        assert card.params == layout(card).total
