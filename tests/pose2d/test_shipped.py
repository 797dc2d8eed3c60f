"""The shipped heatmap network and its provenance card describe the same network: the weights load with the card's
model config and parameter count, the card's held-out figure comes from >= 256 images whose seeds no training
chunk uses, and the weights reproduce that figure on the first held-out chunk (the same images the card's set
starts with) within the sampling spread of 32 images."""

from __future__ import annotations

import json

import pytest
import torch

from human3d.pose2d.networks import count_parameters, load_network, weights_dir
from human3d.pose2d.train import Pose2DDataConfig, chunk_seed, eval_seed, evaluate_pool, synthetic_eval_pool

CARD = weights_dir() / "pose2d_simple_coco17.json"


@pytest.fixture(scope="module")
def shipped():
    return (*load_network(), json.loads(CARD.read_text()))


def test_card_matches_the_weights(shipped):
    net, meta, card = shipped
    model = json.loads(meta["model"]) if isinstance(meta["model"], str) else meta["model"]
    assert model == card["config"]["model"]
    assert count_parameters(net) == card["n_parameters"]
    assert meta["crop_size"] == card["config"]["data"]["crop_size"]
    assert int(meta["step"]) == card["steps"]


def test_card_heldout_set_is_large_and_disjoint(shipped):
    _, _, card = shipped
    data = card["config"]["data"]
    assert data["eval_images"] >= 256 and card["heldout_synthetic"]["n_people"] >= 250
    # held-out seeds start at 2**40; every training chunk the run could have rendered is below
    refreshes = card["steps"] // data["refresh_every"] if data["refresh_every"] else 0
    n_chunks = -(-data["n_images"] // data["chunk"]) + refreshes  # chunk indices 0 .. n_chunks - 1 were rendered
    assert chunk_seed(card["config"]["run"]["seed"], n_chunks) < eval_seed(data["eval_seed"], 0)
    lo, hi = card["heldout_synthetic_flip_test"]["soft_argmax"]["pck@0.2_95ci"]
    assert lo <= card["heldout_synthetic_flip_test"]["soft_argmax"]["pck@0.2"] <= hi


def test_weights_reproduce_the_card_on_the_first_heldout_chunk(shipped):
    net, meta, card = shipped
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = Pose2DDataConfig.from_dict({**card["config"]["data"], "eval_images": 32})
        pool = synthetic_eval_pool(data)
        m = evaluate_pool(net, pool, meta["crop_size"], meta["padding"], decoders=("soft_argmax",), flip_test=True)
    finally:
        torch.set_num_threads(n)
    full = card["heldout_synthetic_flip_test"]["soft_argmax"]["pck@0.2"]
    # 32 images (~500 joints): a 95 % interval of about +-0.04 around the 256-image figure
    assert abs(m["soft_argmax"]["pck@0.2"] - full) < 0.05, (m["soft_argmax"]["pck@0.2"], full)
    assert m["n_people"] >= 30
