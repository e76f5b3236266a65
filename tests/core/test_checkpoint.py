import json

import pytest
import torch

from vaekit.core.checkpoint import load_model, save_model
from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.errors import CheckpointError
from vaekit.files import document_digest


def _model():
    torch.manual_seed(0)
    return VAE(ModelConfig(input_shape=(1, 6, 6), latent_dim=3, hidden=(16,)))


def test_save_load_gives_identical_outputs(tmp_path):
    m = _model().eval()
    save_model(m, tmp_path / "m", extra={"note": 1})
    m2, extra = load_model(tmp_path / "m")
    x = torch.rand(5, 36)
    assert extra == {"note": 1}
    assert torch.equal(m.encode(x)[0], m2.encode(x)[0])
    assert torch.equal(m.decode(torch.ones(2, 3)), m2.decode(torch.ones(2, 3)))
    assert not list((tmp_path / "m").glob("*.tmp")) and not list((tmp_path / "m").glob(".*"))


def test_no_pickle_in_model_folder(tmp_path):
    save_model(_model(), tmp_path / "m")
    raw = (tmp_path / "m" / "model.safetensors").read_bytes()
    assert b"\x80\x04" not in raw[:16]  # not a pickle protocol header
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "model.safetensors").write_bytes(b"garbage"), "truncated or not a safetensors"),
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-40]), "corrupt|truncated"),
    (lambda d: (d / "model.safetensors").unlink(), "not found"),
    (lambda d: (d / "config.json").write_text("{"), "not valid JSON"),
    (lambda d: (d / "config.json").write_text(json.dumps({"format": "vaekit-model", "version": 99})), "version 99"),
    (lambda d: (d / "config.json").write_text(json.dumps({"format": "other"})), "not a vaekit model"),
])
def test_bad_model_folders_give_clear_errors(tmp_path, damage, message):
    save_model(_model(), tmp_path / "m")
    damage(tmp_path / "m")
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path / "m")


def test_wrong_shapes_are_named(tmp_path):
    save_model(_model(), tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "config.json").read_text())
    doc["model"]["latent_dim"] = 5
    doc["config_blake2b"] = document_digest(doc, "config_blake2b")  # a forged config with a valid checksum
    (tmp_path / "m" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"to_posterior\.(weight|bias).*shape"):
        load_model(tmp_path / "m")


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="model folder not found"):
        load_model(tmp_path / "nope")


def test_one_checksum_covers_config_and_weights(tmp_path):
    """Editing config.json (tanh → relu), removing or mangling a digest, or flipping a checkpoint byte is refused."""
    import torch

    from vaekit import VAE, ModelConfig, TrainConfig, Trainer, load_model, save_model
    from vaekit.errors import CheckpointError

    model = VAE(ModelConfig(input_shape=(6,), latent_dim=2, hidden=(4,)))
    save_model(model, tmp_path / "m")
    load_model(tmp_path / "m")
    cfg = tmp_path / "m" / "config.json"
    good = cfg.read_text()
    for edit, message in [(lambda d: d["model"].update(activation="relu"), "does not match its checksum"),
                          (lambda d: d.pop("config_blake2b"), "config checksum"),
                          (lambda d: d.update(config_blake2b=7), "config checksum"),
                          (lambda d: d.pop("weights_blake2b"), "weights checksum"),
                          (lambda d: d.update(weights_blake2b="x" * 32), "weights checksum")]:
        doc = json.loads(good)
        edit(doc)
        cfg.write_text(json.dumps(doc))
        with pytest.raises(CheckpointError, match=message):
            load_model(tmp_path / "m")
    cfg.write_text(good)
    x = (torch.rand(40, 6) < 0.5).float()
    Trainer(VAE(ModelConfig(input_shape=(6,), latent_dim=2, hidden=(4,))),
            TrainConfig(epochs=1, batch_size=10, num_threads=1), out_dir=tmp_path / "run", progress=False).fit(x)
    ck = tmp_path / "run" / "checkpoint.safetensors"
    raw = bytearray(ck.read_bytes())
    raw[-3] ^= 0x01  # a flipped bit in the last tensor's data: still a well-formed file
    ck.write_bytes(bytes(raw))
    t = Trainer(VAE(ModelConfig(input_shape=(6,), latent_dim=2, hidden=(4,))),
                TrainConfig(epochs=2, batch_size=10, num_threads=1), out_dir=tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        t.fit(x, resume=True)
