import pytest

from homework import loader
from homework.base_llm import BaseLLM


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.delenv(loader.ENV_VAR, raising=False)
    monkeypatch.setattr(loader, "_hub_reachable", lambda timeout=2.0: False)
    monkeypatch.setattr(loader, "_in_hf_cache", lambda name: False)


def test_default_falls_back_to_embedded_offline(offline, capsys):
    path, local_only = loader.resolve()
    assert path == str(loader.EMBEDDED_DIR) and local_only
    assert "using the embedded SmolLM2-135M-Instruct" in capsys.readouterr().err


def test_cached_hub_name_loads_from_cache_without_network(offline, monkeypatch):
    monkeypatch.setattr(loader, "_in_hf_cache", lambda name: True)
    assert loader.resolve("HuggingFaceTB/SmolLM2-1.7B-Instruct") == ("HuggingFaceTB/SmolLM2-1.7B-Instruct", True)


def test_reachable_hub_loads_by_name(offline, monkeypatch):
    monkeypatch.setattr(loader, "_hub_reachable", lambda timeout=2.0: True)
    assert loader.resolve() == (loader.DEFAULT_CHECKPOINT, False)


@pytest.mark.parametrize("value", ["embedded", loader.EMBEDDED])
def test_env_var_forces_the_embedded_model(offline, monkeypatch, value):
    monkeypatch.setenv(loader.ENV_VAR, value)
    assert loader.resolve("HuggingFaceTB/SmolLM2-1.7B-Instruct") == (str(loader.EMBEDDED_DIR), True)


def test_env_var_forces_a_local_directory(offline, monkeypatch, tiny_base):
    monkeypatch.setenv(loader.ENV_VAR, str(tiny_base))
    assert loader.resolve() == (str(tiny_base), True)


def test_forced_hub_name_that_cannot_load_does_not_fall_back(offline, monkeypatch):
    monkeypatch.setenv(loader.ENV_VAR, "HuggingFaceTB/SmolLM2-360M-Instruct")
    with pytest.raises(loader.CheckpointError, match="hub is unreachable"):
        loader.resolve()


@pytest.mark.parametrize(
    "checkpoint,message",
    [
        ("./no/such/model", "is not a model directory"),
        ("/tmp", "is not a model directory"),
        ("someone/unknown-model", "can't load 'someone/unknown-model'"),
    ],
)
def test_bad_checkpoints_get_one_line_errors(offline, checkpoint, message):
    with pytest.raises(loader.CheckpointError, match=message) as info:
        loader.resolve(checkpoint)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("checkpoint", ["bad name!", "-org/model", "org/model.", "a" * 120 + "/b"])
def test_malformed_hub_names_get_one_line_errors(monkeypatch, checkpoint):
    monkeypatch.delenv(loader.ENV_VAR, raising=False)
    monkeypatch.setattr(loader, "_hub_reachable", lambda timeout=2.0: False)  # the real cache lookup validates the name
    with pytest.raises(loader.CheckpointError, match="neither a model directory nor a hub name") as info:
        loader.resolve(checkpoint)
    assert "\n" not in str(info.value)


def test_an_adapter_folder_is_not_a_model(offline, tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(loader.CheckpointError, match="holds a LoRA adapter, not a model"):
        loader.resolve(str(tmp_path))


def test_a_model_folder_without_weights_is_a_one_line_error(offline, tiny_base):
    (tiny_base / "model.safetensors").unlink()
    with pytest.raises(loader.CheckpointError, match=f"can't load '{tiny_base}'") as info:
        loader.load(str(tiny_base))
    assert "\n" not in str(info.value)


def test_cli_prints_bad_checkpoint_as_one_line(offline):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "homework.base_llm", "test", "--checkpoint", "./no/such/model"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: ./no/such/model is not a model directory (no config.json there)"
    assert "Traceback" not in result.stderr


def test_device_is_chosen_once_and_cpu_is_fp32(capsys):
    loader.device_and_dtype.cache_clear()
    device, dtype = loader.device_and_dtype()
    assert loader.device_and_dtype() == (device, dtype)
    assert capsys.readouterr().err.count("device:") == 1
    if device.type == "cpu":
        assert str(dtype) == "torch.float32"


@pytest.mark.slow
def test_embedded_model_loads_and_batched_equals_sequential(offline):
    llm = BaseLLM()
    assert llm.model.name_or_path == loader.EMBEDDED
    assert llm.tokenizer.pad_token is not None and llm.tokenizer.padding_side == "left"
    assert llm.model.num_parameters() == pytest.approx(134.5e6, rel=0.01)
    prompts = ["How many gram are there per 6 kg?", "Hi", "Convert the measurement of 6 l into cm^3, please."]
    llm.max_new_tokens = 24
    assert llm.batched_generate(prompts) == [llm.generate(p) for p in prompts]
