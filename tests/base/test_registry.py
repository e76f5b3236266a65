"""Registries: configs accept exactly the registered names, and README's "Add your own prior" example works as shown."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from vaekit.core.checkpoint import load_model
from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.likelihoods import LIKELIHOODS
from vaekit.core.nn import ACTIVATIONS, DECODERS, ENCODERS
from vaekit.core.objectives import OBJECTIVES
from vaekit.core.priors import PRIORS, Prior
from vaekit.errors import CheckpointError, VaekitError
from vaekit.files import document_digest
from vaekit.registry import Registry
from tests.conftest import ROOT

README = ROOT / "README.md"


def _readme_example() -> str:
    """The Python block of README's "Add your own prior" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Add your own prior", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section should hold exactly one Python example"
    return blocks[0]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run the README example (it registers "unit_mixture"), in a scratch folder → its namespace. The registration
    is removed at teardown: under xdist's work stealing a worker may leave this module and come back to it, which
    runs a module fixture again, and a second class under the same name is (rightly) refused."""
    cwd = Path.cwd()
    work = tmp_path_factory.mktemp("readme_prior")
    torch.manual_seed(0)
    ns: dict[str, Any] = {"__name__": "readme_example"}
    try:
        os.chdir(work)
        exec(compile(_readme_example(), str(README), "exec"), ns)
    finally:
        os.chdir(cwd)
    ns["_dir"] = work / "runs" / "unit_mixture"
    yield ns
    PRIORS._items.pop("unit_mixture", None)  # noqa: SLF001 - undo the example's registration (see above)


def test_registries_list_the_shipped_components() -> None:
    assert LIKELIHOODS.names()[:6] == ("bernoulli", "gaussian", "gaussian_learned", "logistic", "categorical", "mixed")
    assert PRIORS.names()[:3] == ("standard_normal", "mog", "vampprior")
    assert ENCODERS.names()[:3] == ("mlp", "conv", "resnet") and DECODERS.names()[:3] == ("mlp", "conv", "resnet")
    assert set(ACTIVATIONS.names()) >= {"tanh", "relu", "elu", "gelu", "softplus", "silu"}
    assert OBJECTIVES.names()[:2] == ("elbo", "iwae")
    for name in LIKELIHOODS.names():
        assert LIKELIHOODS.get(name).name == name


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(VaekitError) as e:
        ModelConfig(likelihood="nope")
    msg = str(e.value)
    assert "\n" not in msg and "likelihood 'nope'" in msg
    assert all(repr(n) in msg for n in LIKELIHOODS.names())
    for kw, kind in ((dict(arch="transformer"), "arch"), (dict(activation="swish7"), "activation"),
                     (dict(prior="student_t"), "prior")):
        with pytest.raises(VaekitError, match=rf"^{kind} '.*' is not one of \[.*\]$"):
            ModelConfig(**kw)
    with pytest.raises(VaekitError, match=r"objective 'vimco' is not one of \['elbo', 'iwae'"):
        TrainConfig(objective="vimco")


def test_component_rules_live_with_the_components() -> None:
    with pytest.raises(VaekitError, match="n_categories >= 2"):
        ModelConfig(likelihood="categorical")
    with pytest.raises(VaekitError, match="obs_variance 'column' needs likelihood 'gaussian_learned' or 'mixed'"):
        ModelConfig(obs_variance="column")
    with pytest.raises(VaekitError, match=r"arch 'conv' needs input_shape \(C, H, W\)"):
        ModelConfig(arch="conv", input_shape=(784,))
    ModelConfig(likelihood="gaussian_learned", obs_variance="column")
    images = [n for n in LIKELIHOODS.names() if LIKELIHOODS.get(n).supports_images]
    assert images[:3] == ["bernoulli", "gaussian", "gaussian_learned"] and "logistic" in images


def test_registry_refuses_a_second_component_under_a_taken_name() -> None:
    reg: Registry[type] = Registry("thing")
    reg.register("a")(int)
    reg.register("a")(int)  # the same object again is fine (module reloads)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(str)


def test_readme_prior_trains_and_round_trips(example: dict[str, Any]) -> None:
    model, again = example["model"], example["again"]
    assert "unit_mixture" in PRIORS and issubclass(example["UnitMixture"], Prior)
    assert type(model.prior).__name__ == type(again.prior).__name__ == "UnitMixture"
    assert (example["_dir"] / "config.json").exists()
    assert torch.equal(again.prior.means, model.prior.means.detach().cpu())
    assert not torch.equal(model.prior.means.detach().cpu(), torch.zeros_like(again.prior.means))
    z = again.prior.sample(5, torch.Generator().manual_seed(0))
    assert z.shape == (5, 2) and again.prior.log_prob(z).shape == (5,)
    x = example["x"][:8]
    model.cpu().eval()
    with torch.no_grad():
        assert torch.allclose(again(x).mu, model(x).mu)


def test_model_folder_naming_an_unregistered_prior_is_refused(example: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(example["_dir"], folder)
    doc = json.loads((folder / "config.json").read_text())
    doc["model"]["prior"] = "student_t"
    doc["config_blake2b"] = document_digest(doc, "config_blake2b")  # a re-sealed config: the name check must hold
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError) as e:
        load_model(folder)
    msg = str(e.value)
    assert "\n" not in msg and "prior 'student_t' is not one of ['standard_normal', 'mog', 'vampprior'" in msg
