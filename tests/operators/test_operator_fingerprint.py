"""Provenance fingerprints of model operators: equal inputs, equal hashes; any change, a new one."""

from __future__ import annotations

import json

import pytest
import torch

import gn_theory as gt
from cases import CASES

KINDS = ["hessian", "ggn", "residual"]
HASH_KEYS = ("operator", "model", "data", "loss", "params")


def build(kind="ggn", case=CASES[0], **kwargs):
    model, data = case.build()
    return getattr(gt, f"{kind}_operator")(model, data, case.loss, **kwargs)


class CountingData:
    """A re-iterable of batches that counts the batches read from it."""

    def __init__(self, batches):
        self.batches = batches
        self.reads = 0

    def __iter__(self):
        for batch in self.batches:
            self.reads += 1
            yield batch


@pytest.mark.parametrize("kind", KINDS)
def test_fields_and_metadata(kind):
    op = build(kind)
    fp = op.fingerprint
    assert set(fp) == {*HASH_KEYS, "kind", "num_samples"}
    for key in HASH_KEYS:
        assert isinstance(fp[key], str) and len(fp[key]) == 16
        int(fp[key], 16)  # hex digits
    assert fp["kind"] == kind and fp["num_samples"] == op.num_samples == 13
    assert op.metadata["fingerprint"] == fp and op.settings["fingerprint"] == fp
    json.dumps(fp)  # storable as provenance


def test_same_model_and_data_same_fingerprint(case):
    assert build("ggn", case).fingerprint == build("ggn", case).fingerprint


def test_kinds_share_model_and_data_hashes():
    H, G, R = (build(k) for k in KINDS)
    for key in ("model", "data", "loss", "params"):
        assert H.fingerprint[key] == G.fingerprint[key] == R.fingerprint[key]
    assert len({op.fingerprint["operator"] for op in (H, G, R)}) == 3


def test_batching_and_order_do_not_change_the_data_hash():
    model, (X, y) = CASES[0].build()
    full = gt.ggn_operator(model, (X, y)).fingerprint
    uneven = gt.ggn_operator(model, [(X[:2], y[:2]), (X[2:9], y[2:9]), (X[9:], y[9:])]).fingerprint
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=5)
    perm = torch.randperm(X.shape[0])
    shuffled = gt.ggn_operator(model, (X[perm], y[perm])).fingerprint
    assert full == uneven == gt.ggn_operator(model, loader).fingerprint == shuffled


def test_changed_parameters_change_the_model_hash():
    model, data = CASES[0].build()
    before = gt.ggn_operator(model, data).fingerprint
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-12
    after = gt.ggn_operator(model, data).fingerprint
    assert after["model"] != before["model"] and after["operator"] != before["operator"]
    assert after["data"] == before["data"]


def test_fingerprint_holds_values_at_build_time():
    model, data = CASES[0].build()
    op = gt.hessian_operator(model, data)
    before = op.fingerprint
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    assert op.fingerprint == before
    assert gt.hessian_operator(model, data).fingerprint["model"] != before["model"]


def test_changed_buffers_change_the_model_hash():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    model.double().eval()
    data = (torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 0, 1, 1, 0]))
    before = gt.ggn_operator(model, data).fingerprint
    with torch.no_grad():
        model[1].running_mean[0] += 0.5
    assert gt.ggn_operator(model, data).fingerprint["model"] != before["model"]


def test_changed_data_change_the_data_hash():
    model, (X, y) = CASES[0].build()
    base = gt.ggn_operator(model, (X, y)).fingerprint
    X2 = X.clone()
    X2[4, 1] += 1e-12
    y2 = y.clone()
    y2[0] = (y[0] + 1) % 3
    swapped = y.clone()
    i, j = 0, int((y != y[0]).nonzero()[0])
    swapped[i], swapped[j] = y[j], y[i]  # same targets, paired with other inputs
    prints = [
        gt.ggn_operator(model, (X2, y)).fingerprint,
        gt.ggn_operator(model, (X, y2)).fingerprint,
        gt.ggn_operator(model, (X, swapped)).fingerprint,
        gt.ggn_operator(model, (X[:-1], y[:-1])).fingerprint,
    ]
    for fp in prints:
        assert fp["data"] != base["data"] and fp["operator"] != base["operator"]
        assert fp["model"] == base["model"]
    assert len({fp["data"] for fp in prints}) == len(prints)
    assert prints[-1]["num_samples"] == base["num_samples"] - 1


def test_loss_and_parameter_selection_are_part_of_it():
    model, (X, _) = CASES[0].build()
    Y = torch.randn(13, 3, dtype=torch.float64)
    mse = gt.ggn_operator(model, (X, Y), "mse").fingerprint

    def half_sq(out, t):
        return 0.5 * ((out - t) ** 2).sum(dim=1).mean()

    def log_cosh(out, t):
        return torch.log(torch.cosh(out - t)).sum(dim=1).mean()

    fps = [mse, gt.ggn_operator(model, (X, Y), half_sq).fingerprint,
           gt.ggn_operator(model, (X, Y), log_cosh).fingerprint]
    assert len({fp["loss"] for fp in fps}) == 3
    sub = gt.ggn_operator(model, (X, Y), "mse", params=["0.weight"]).fingerprint
    assert sub["params"] != mse["params"] and sub["operator"] != mse["operator"]
    assert sub["model"] == mse["model"] and sub["data"] == mse["data"]


def test_checksum_comes_from_the_validation_pass():
    model, (X, y) = CASES[0].build()
    data = CountingData([(X[:6], y[:6]), (X[6:], y[6:])])
    op = gt.ggn_operator(model, data)
    assert data.reads == 2  # one pass in the constructor, no second one for the fingerprint
    assert op.fingerprint == gt.ggn_operator(model, (X, y)).fingerprint


def test_combinations_and_results_carry_it():
    H, G = build("hessian"), build("ggn")
    combo = H - G
    fp = combo.fingerprint
    assert fp is not None and fp["operator"] not in (H.fingerprint["operator"], G.fingerprint["operator"])
    assert fp["terms"] == [H.fingerprint["operator"], G.fingerprint["operator"]]
    assert (G - H).fingerprint["operator"] != fp["operator"]
    assert gt.DenseOperator(torch.eye(3)).fingerprint is None
    spectrum = gt.eigh(G)
    assert spectrum.settings["fingerprint"] == G.fingerprint


def test_within_class_operator_has_its_own_key(tmp_path):
    """G_w's key differs from G's and between class structures; a G checkpoint is refused for G_w."""
    from cases import TANH_C3_UNBALANCED

    from gn_theory.decomposition import class_structure, within_class_operator
    from gn_theory.exceptions import ResultFileError
    from gn_theory.spectra import lanczos

    model, (X, y) = TANH_C3_UNBALANCED.build()
    model = model.double()
    data = (X.double(), y)
    G = gt.ggn_operator(model, data)
    cs = class_structure(model, data)
    W = within_class_operator(G, cs)
    assert W.fingerprint["operator"] != G.fingerprint["operator"]
    assert W.metadata["fingerprint"] == G.fingerprint  # provenance stays G's
    assert within_class_operator(G, cs).fingerprint == W.fingerprint  # deterministic
    cs2 = class_structure(model, (data[0][:-3], data[1][:-3]))
    G2 = gt.ggn_operator(model, (data[0][:-3], data[1][:-3]))
    assert within_class_operator(G2, cs2).fingerprint["operator"] != W.fingerprint["operator"]
    ck = tmp_path / "top.npz"
    lanczos(G, 2, seed=0, checkpoint=ck)
    with pytest.raises(ResultFileError, match="operator|fingerprint|another"):
        lanczos(W, 2, seed=0, checkpoint=ck, resume=True)
